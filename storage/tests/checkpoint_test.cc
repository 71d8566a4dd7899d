#include "storage/checkpoint.h"

#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

TEST(checkpoint, offset_checkpoint_format_is_kafkas) {
  offset_map m;
  m[{"orders", 1}] = 977;
  m[{"orders", 0}] = 1520;
  m[{"a.b_c-d", 12}] = 0;
  EXPECT_EQ(format_offset_checkpoint(m), "0\n3\na.b_c-d 12 0\norders 0 1520\norders 1 977\n");
  EXPECT_EQ(format_offset_checkpoint({}), "0\n0\n");
}

TEST(checkpoint, offset_checkpoint_round_trip_and_rejects) {
  auto m = parse_offset_checkpoint("0\n2\norders 0 1520\nclicks 3 7\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->size(), 2u);
  EXPECT_EQ((m->at({"orders", 0})), 1520);
  EXPECT_EQ((m->at({"clicks", 3})), 7);
  EXPECT_TRUE(parse_offset_checkpoint("0\n0\n"));
  EXPECT_TRUE(parse_offset_checkpoint("0\n1\nt 0 5"));  // no final newline
  EXPECT_FALSE(parse_offset_checkpoint(""));
  EXPECT_FALSE(parse_offset_checkpoint("1\n0\n"));           // unknown version
  EXPECT_FALSE(parse_offset_checkpoint("0\n2\nt 0 5\n"));    // count mismatch
  EXPECT_FALSE(parse_offset_checkpoint("0\n1\nt 0\n"));      // missing field
  EXPECT_FALSE(parse_offset_checkpoint("0\n1\nt 0 5 6\n"));  // extra field
  EXPECT_FALSE(parse_offset_checkpoint("0\n1\nt x 5\n"));    // not a number
  EXPECT_FALSE(parse_offset_checkpoint("0\n1\nt  0 5\n"));   // double space
}

TEST(checkpoint, uuid_base64_matches_kafka) {
  // A topic id as Kafka prints it, and its bytes.
  wire::uuid id{0x2f, 0x1a, 0x19, 0x62, 0x60, 0x7f, 0x41, 0x1b,
                0x88, 0x2d, 0xd1, 0x90, 0x60, 0xc3, 0x8d, 0x57};
  EXPECT_EQ(uuid_to_base64(id), "LxoZYmB_QRuILdGQYMONVw");
  EXPECT_EQ(uuid_from_base64("LxoZYmB_QRuILdGQYMONVw"), id);
  wire::uuid counting{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  EXPECT_EQ(uuid_to_base64(counting), "AAECAwQFBgcICQoLDA0ODw");
  EXPECT_FALSE(uuid_from_base64("AAECAwQFBgcICQoLDA0OD"));   // short
  EXPECT_FALSE(uuid_from_base64("AAECAwQFBgcICQoLDA0OD+"));  // not URL-safe alphabet
  EXPECT_FALSE(uuid_from_base64("AAECAwQFBgcICQoLDA0ODx"));  // non-zero padding bits
}

TEST(checkpoint, partition_metadata_format) {
  wire::uuid counting{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  EXPECT_EQ(format_partition_metadata(counting), "version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw\n");
  EXPECT_EQ(parse_partition_metadata("version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw\n"), counting);
  EXPECT_FALSE(parse_partition_metadata("version: 1\ntopic_id: AAECAwQFBgcICQoLDA0ODw\n"));
  EXPECT_FALSE(parse_partition_metadata("version: 0\n"));
  EXPECT_FALSE(parse_partition_metadata("topic_id: AAECAwQFBgcICQoLDA0ODw\nversion: 0\n"));
}

TEST(checkpoint, partition_dir_names) {
  EXPECT_EQ(partition_dir_name({"orders", 3}), "orders-3");
  auto tp = parse_partition_dir_name("my-topic-12");
  ASSERT_TRUE(tp);
  EXPECT_EQ(tp->topic, "my-topic");
  EXPECT_EQ(tp->partition, 12);
  EXPECT_FALSE(parse_partition_dir_name("orders"));
  EXPECT_FALSE(parse_partition_dir_name("orders-"));
  EXPECT_FALSE(parse_partition_dir_name("-3"));
  EXPECT_FALSE(parse_partition_dir_name("orders-3.abcdef-delete"));
  EXPECT_FALSE(parse_partition_dir_name("orders--3x"));
  EXPECT_FALSE(parse_partition_dir_name("or ders-3"));
  EXPECT_FALSE(parse_partition_dir_name("orders-99999999999"));  // partition overflows int32
  EXPECT_FALSE(is_valid_topic_name(".."));
  EXPECT_FALSE(is_valid_topic_name("a/b"));
  EXPECT_FALSE(is_valid_topic_name(std::string(250, 'a')));
  EXPECT_TRUE(is_valid_topic_name(std::string(249, 'a')));
}

}  // namespace
}  // namespace sluice::storage
