// Package bench measures reachability strategies and reachvm's speed against
// real peers. Nothing imports it.
package bench
