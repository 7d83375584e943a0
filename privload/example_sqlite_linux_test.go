//go:build linux && amd64

package privload_test

import (
	"fmt"
	"log"
	"unsafe"

	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// SQLite's result codes the example checks.
const (
	sqliteOK   = 0
	sqliteRow  = 100
	sqliteDone = 101
)

// Example_sqlite runs an in-memory SQLite database in the system's
// libsqlite3, loaded privately into vmcode (its libc and libm are the
// host's). SQL text goes in as C strings in vmheap (vmm's CString); the
// database and statement handles come back through out-pointers; column
// text and error messages come back as C strings read with GoString.
func Example_sqlite() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	lib, err := privload.Load(v, "libsqlite3.so.0", privload.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer lib.Close()
	fn := func(name string) privload.Func {
		f, err := lib.Func(name)
		if err != nil {
			log.Fatal(err)
		}
		return f
	}
	var (
		open     = fn("sqlite3_open")
		closeDB  = fn("sqlite3_close")
		exec     = fn("sqlite3_exec")
		prepare  = fn("sqlite3_prepare_v2")
		step     = fn("sqlite3_step")
		colInt   = fn("sqlite3_column_int")
		colText  = fn("sqlite3_column_text")
		finalize = fn("sqlite3_finalize")
		free     = fn("sqlite3_free")
	)
	// A call fails only after lib.Close.
	must := func(r uintptr, err error) uintptr {
		if err != nil {
			log.Fatal(err)
		}
		return r
	}
	cstr := func(s string) uintptr {
		p, err := v.CString(s)
		if err != nil {
			log.Fatal(err)
		}
		return p
	}

	// int sqlite3_open(const char *filename, sqlite3 **ppDb)
	name := cstr(":memory:")
	defer v.Free(name)
	var db uintptr
	if rc := must(open.Call2(name, uintptr(unsafe.Pointer(&db)))); rc != sqliteOK {
		log.Fatalf("sqlite3_open: %d", rc)
	}
	defer closeDB.Call1(db)

	// int sqlite3_exec(sqlite3*, const char *sql, callback, void *,
	// char **errmsg)
	execSQL := func(sql string) {
		s := cstr(sql)
		defer v.Free(s)
		var errmsg uintptr
		rc := must(exec.Call5(db, s, 0, 0, uintptr(unsafe.Pointer(&errmsg))))
		if errmsg != 0 {
			fmt.Printf("exec: rc %d: %s\n", rc, privload.GoString(errmsg))
			free.Call1(errmsg)
		}
	}
	execSQL("CREATE TABLE t(n INTEGER, s TEXT); INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')")
	execSQL("SELECT * FROM missing")

	// int sqlite3_prepare_v2(sqlite3*, const char *sql, int nByte,
	// sqlite3_stmt **ppStmt, const char **pzTail); nByte -1: up to the NUL.
	q := cstr("SELECT n, s FROM t WHERE n >= 2 ORDER BY n")
	defer v.Free(q)
	var stmt uintptr
	if rc := must(prepare.Call5(db, q, ^uintptr(0), uintptr(unsafe.Pointer(&stmt)), 0)); rc != sqliteOK {
		log.Fatalf("sqlite3_prepare_v2: %d", rc)
	}
	rc := must(step.Call1(stmt))
	for ; rc == sqliteRow; rc = must(step.Call1(stmt)) {
		// The text stays valid until the next step: GoString copies it.
		fmt.Println(int32(must(colInt.Call2(stmt, 0))), privload.GoString(must(colText.Call2(stmt, 1))))
	}
	fmt.Println("done:", rc == sqliteDone)
	finalize.Call1(stmt)
	// Output:
	// exec: rc 1: no such table: missing
	// 2 two
	// 3 three
	// done: true
}
