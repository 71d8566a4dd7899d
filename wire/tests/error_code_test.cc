#include "wire/error_code.h"

#include <gtest/gtest.h>

namespace sluice::wire {
namespace {

TEST(error_code, values_are_kafkas) {
  EXPECT_EQ(to_int(error_code::unknown_server_error), -1);
  EXPECT_EQ(to_int(error_code::none), 0);
  EXPECT_EQ(to_int(error_code::offset_out_of_range), 1);
  EXPECT_EQ(to_int(error_code::not_leader_or_follower), 6);
  EXPECT_EQ(to_int(error_code::unsupported_version), 35);
  EXPECT_EQ(to_int(error_code::invalid_request), 42);
  EXPECT_EQ(to_int(error_code::unknown_topic_id), 100);
  EXPECT_EQ(to_int(error_code::transaction_abortable), 120);
  EXPECT_EQ(to_int(error_code::share_session_limit_reached), 133);
}

TEST(error_code, names) {
  EXPECT_EQ(error_name(error_code::none), "NONE");
  EXPECT_EQ(error_name(error_code::unknown_topic_or_partition), "UNKNOWN_TOPIC_OR_PARTITION");
  EXPECT_EQ(error_name(error_code::share_session_limit_reached), "SHARE_SESSION_LIMIT_REACHED");
  EXPECT_EQ(error_name(static_cast<error_code>(-2)), "UNKNOWN_ERROR_CODE");
  EXPECT_EQ(error_name(static_cast<error_code>(134)), "UNKNOWN_ERROR_CODE");
}

TEST(error_code, every_code_from_minus_one_to_133_has_a_name) {
  for (int16_t c = -1; c <= 133; ++c) {
    EXPECT_NE(error_name(static_cast<error_code>(c)), "UNKNOWN_ERROR_CODE") << c;
  }
}

}  // namespace
}  // namespace sluice::wire
