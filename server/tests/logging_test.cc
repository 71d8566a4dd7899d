// Log lines carry strings that clients choose (client ids, group and member ids): log_safe keeps
// them to one line of printable text.

#include "server/logging.h"

#include <gtest/gtest.h>

namespace sluice::server {
namespace {

TEST(log_safe, printable_ascii_stays_as_it_is) {
  EXPECT_EQ(log_safe("rdkafka-producer.1 (v2.0.2)"), "rdkafka-producer.1 (v2.0.2)");
  EXPECT_EQ(log_safe(""), "");
}

TEST(log_safe, line_breaks_and_control_bytes_are_escaped) {
  EXPECT_EQ(log_safe("a\nb\rc\td\x1b[31m"), "a\\x0ab\\x0dc\\x09d\\x1b[31m");
  EXPECT_EQ(log_safe(std::string_view("nul\0x", 5)), "nul\\x00x");
  // A backslash is doubled, so an escape in the output always comes from log_safe.
  EXPECT_EQ(log_safe("c:\\x0a"), "c:\\\\x0a");
  // Other encodings are escaped byte by byte.
  EXPECT_EQ(log_safe("caf\xc3\xa9"), "caf\\xc3\\xa9");
}

TEST(log_safe, long_values_are_cut) {
  std::string long_id(1000, 'x');
  std::string safe = log_safe(long_id);
  EXPECT_EQ(safe.size(), 256u + 3);
  EXPECT_TRUE(safe.ends_with("..."));
}

}  // namespace
}  // namespace sluice::server
