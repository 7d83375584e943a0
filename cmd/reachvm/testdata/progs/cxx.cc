// cxx: C++ exceptions (thrown through frames, rethrown, carried across
// threads in an exception_ptr), std::thread with a mutex and atomics,
// thread_local objects with constructors, iostream formatting.
#include <atomic>
#include <exception>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

struct Custom : std::runtime_error {
	int code;
	Custom(const std::string &what, int c) : std::runtime_error(what), code(c) {}
};

struct Counter {
	int n;
	Counter() : n(100) {}
};
thread_local Counter perThread;

static int depth(int n) {
	if (n == 0)
		throw Custom("bottom reached", 42);
	std::string keep = "frame " + std::to_string(n); // destroyed while unwinding
	return depth(n - 1) + static_cast<int>(keep.size());
}

int main() {
	try {
		depth(20);
	} catch (const std::runtime_error &e) {
		const Custom *c = dynamic_cast<const Custom *>(&e);
		std::cout << "caught: " << e.what() << " code " << (c ? c->code : -1) << "\n";
	}
	try {
		try {
			std::vector<int> v(3);
			v.at(10) = 1;
		} catch (const std::out_of_range &) {
			std::cout << "out_of_range, rethrowing\n";
			throw;
		}
	} catch (const std::logic_error &) {
		std::cout << "rethrown as logic_error\n";
	}

	std::mutex mu;
	std::map<int, long> sums;
	std::atomic<long> atomicTotal{0};
	std::vector<std::exception_ptr> errors(4);
	std::vector<std::thread> ts;
	for (int t = 0; t < 4; t++) {
		ts.emplace_back([&, t] {
			try {
				long s = 0;
				for (int i = t; i < 100000; i += 4) {
					s += i;
					perThread.n++;
				}
				atomicTotal += s;
				{
					std::lock_guard<std::mutex> g(mu);
					sums[t] = s;
				}
				if (t == 2)
					throw std::invalid_argument("thread 2 threw");
			} catch (...) {
				errors[t] = std::current_exception();
			}
		});
	}
	for (auto &t : ts)
		t.join();
	for (auto &[t, s] : sums)
		std::cout << "thread " << t << " sum " << s << "\n";
	std::cout << "atomic total " << atomicTotal << ", main's thread_local " << perThread.n << "\n";
	for (auto &e : errors) {
		if (!e)
			continue;
		try {
			std::rethrow_exception(e);
		} catch (const std::exception &x) {
			std::cout << "from a thread: " << x.what() << "\n";
		}
	}
	std::ostringstream os;
	os << std::fixed << std::setprecision(3) << 3.14159265 << " " << std::hex << 255 << " " << std::setw(8) << std::setfill('*') << "pad";
	std::cout << os.str() << std::endl;
	std::cerr << "cerr works" << std::endl;
	std::vector<int> v(10);
	std::iota(v.begin(), v.end(), 1);
	std::cout << "accumulate " << std::accumulate(v.begin(), v.end(), 0) << std::endl;
	return 0;
}
