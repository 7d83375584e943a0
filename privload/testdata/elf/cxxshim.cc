// cxxshim.cc: a C++ client built with g++, loaded privately with a
// private libstdc++ and libgcc_s: a thread_local counter (its own
// thread-local storage), std::string (the host's malloc through
// libstdc++), and std::uncaught_exceptions, which reads libstdc++'s own
// thread-local exception globals (__cxa_get_globals).
#include <exception>
#include <stdexcept>
#include <string>

thread_local long cxx_tl = 5;

extern "C" long cxx_count(void) { return ++cxx_tl; }

// cxx_digits returns the length of the decimal digits of 0..n-1
// concatenated.
extern "C" long cxx_digits(long n)
{
	std::string s;
	for (long i = 0; i < n; i++)
		s += std::to_string(i);
	return (long)s.size();
}

extern "C" long cxx_uncaught(void) { return std::uncaught_exceptions(); }

// cxx_throw throws std::runtime_error(to_string(v)) and catches it: v + 1
// if the exception arrived with its message.
extern "C" long cxx_throw(long v)
{
	try {
		throw std::runtime_error(std::to_string(v));
	} catch (const std::exception &e) {
		return std::stol(e.what()) + 1;
	}
	return -1;
}
