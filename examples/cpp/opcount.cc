// opcount counts, per first instruction byte (opcode, or escape/prefix
// byte), the instructions the program executes: a C++ client, with the
// standard library's containers and strings in its events, an inline
// add per block and byte into a table of cells in its .bss.
//
//     g++ -O2 -fPIC -shared -mgeneral-regs-only -I include -o opcount.so examples/cpp/opcount.cc
//     reachvm run -c ./opcount.so -- ls
//
// It reports {"client":"opcount","instructions":N,"top":[{"byte":"0x..",
// "count":N},...]}: the commonest first bytes, ten or as many as its
// argument top=N asks for. It parses that with std::stoul, whose
// exceptions it catches: RV_CXX_EXCEPTIONS lets a privately loaded
// client unwind its own code.
#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "reachvm.h"

RV_CXX_EXCEPTIONS

namespace {

// top is how many bytes the report lists.
size_t top = 10;

// cells counts the instructions executed by their first byte.
uint64_t cells[256];

void block(rv_block *b)
{
	// The block's instructions grouped by first byte: one add per
	// distinct byte.
	std::map<uint8_t, int64_t> n;
	for (int i = 0; i < b->n; i++)
		n[b->instrs[i].bytes[0]]++;
	for (const auto &[byte, k] : n)
		rv_insert_add(b, 0, &cells[byte], k, 1);
}

void report(const rv_exit *e)
{
	std::vector<std::pair<uint64_t, int>> all;
	uint64_t total = 0;
	for (int i = 0; i < 256; i++) {
		uint64_t v = __atomic_load_n(&cells[i], __ATOMIC_RELAXED);
		total += v;
		if (v != 0)
			all.emplace_back(v, i);
	}
	std::sort(all.begin(), all.end(), [](auto x, auto y) { return x.first != y.first ? x.first > y.first : x.second < y.second; });
	std::string out = "{\"client\":\"opcount\",\"instructions\":" + std::to_string(total) + ",\"top\":[";
	for (size_t i = 0; i < all.size() && i < top; i++) {
		char hex[8];
		static const char digits[] = "0123456789abcdef";
		hex[0] = '0', hex[1] = 'x', hex[2] = digits[all[i].second >> 4], hex[3] = digits[all[i].second & 15], hex[4] = 0;
		out += (i > 0 ? ",{\"byte\":\"" : "{\"byte\":\"") + std::string(hex) + "\",\"count\":" + std::to_string(all[i].first) + "}";
	}
	out += "]}\n";
	if (write(e->fd, out.data(), out.size()) < 0)
		return;
}

} // namespace

extern "C" int reachvm_client_init(rv_client *c, int argc, const char **argv)
{
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		try {
			if (a.rfind("top=", 0) != 0)
				throw std::invalid_argument(a);
			top = std::stoul(a.substr(4));
		} catch (const std::exception &e) {
			std::string msg = std::string("opcount: bad argument ") + argv[i] + " (" + e.what() + "); takes top=N\n";
			if (write(2, msg.data(), msg.size()) < 0)
				return 2;
			return 2;
		}
	}
	c->name = "opcount";
	c->block = block;
	c->exit = report;
	return 0;
}
