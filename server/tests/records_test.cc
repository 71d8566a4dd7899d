#include "server/cluster/records.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "storage/checkpoint.h"

namespace sluice::server::cluster {
namespace {

const wire::uuid topic_id = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                             0x0f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21};

TEST(records_keys, layout_under_the_prefix) {
  std::string id = storage::uuid_to_base64(topic_id);
  EXPECT_EQ(keys::cluster_id("/sluice"), "/sluice/cluster_id");
  EXPECT_EQ(keys::broker("/sluice", 3), "/sluice/brokers/3");
  EXPECT_EQ(keys::controller("/c1"), "/c1/controller");
  EXPECT_EQ(keys::topic_name("/sluice", "orders"), "/sluice/topic_names/orders");
  EXPECT_EQ(keys::topic("/sluice", topic_id), "/sluice/topics/" + id);
  EXPECT_EQ(keys::partition("/sluice", topic_id, 11), "/sluice/partitions/" + id + "/11");
  // A prefix range of one topic's partitions must not also cover another topic's.
  EXPECT_EQ(keys::partitions("/sluice", topic_id), "/sluice/partitions/" + id + "/");
  EXPECT_EQ(keys::producer_id_block("/sluice"), "/sluice/producer_id_block");
}

TEST(records_keys, parse_back_and_refuse_other_shapes) {
  EXPECT_EQ(keys::broker_id("/sluice", "/sluice/brokers/42"), 42);
  EXPECT_EQ(keys::broker_id("/sluice", "/sluice/brokers/042"), std::nullopt);
  EXPECT_EQ(keys::broker_id("/sluice", "/sluice/brokers/-1"), std::nullopt);
  EXPECT_EQ(keys::broker_id("/sluice", "/sluice/brokers/99999999999"), std::nullopt);
  EXPECT_EQ(keys::broker_id("/sluice", "/other/brokers/1"), std::nullopt);
  auto p = keys::partition_of("/sluice", keys::partition("/sluice", topic_id, 7));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, topic_id);
  EXPECT_EQ(p->second, 7);
  EXPECT_EQ(keys::partition_of("/sluice", "/sluice/partitions/notanid/1"), std::nullopt);
  EXPECT_EQ(keys::partition_of("/sluice", keys::partitions("/sluice", topic_id)), std::nullopt);
}

TEST(records, round_trip) {
  broker_record b{2, "rack-a", {{"INTERNAL", {"10.0.0.2", 9093}}, {"EXTERNAL", {"b2", 9092}}}, "x"};
  EXPECT_EQ(decode_broker(encode(b)), b);
  broker_record no_rack{1, std::nullopt, {{"PLAINTEXT", {"127.0.0.1", 9092}}}, "y"};
  EXPECT_EQ(decode_broker(encode(no_rack)), no_rack);
  controller_record c{3};
  EXPECT_EQ(decode_controller(encode(c)), c);
  topic_record t{"orders", {{1, 2, 3}, {2, 3, 1}}, {{"retention.ms", "1000"}}};
  EXPECT_EQ(decode_topic(encode(t)), t);
  partition_record p{2, 5, {2, 3}};
  EXPECT_EQ(decode_partition(encode(p)), p);
  partition_record offline{-1, 6, {}};
  EXPECT_EQ(decode_partition(encode(offline)), offline);
  partition_record moving{2, 5, {2, 1}, {3}, {1}};
  EXPECT_EQ(decode_partition(encode(moving)), moving);
  // A record written before reassignment existed has neither list: none is in progress.
  std::optional<partition_record> old =
      decode_partition(R"({"leader":2,"leader_epoch":5,"isr":[2]})");
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->reassigning());
  EXPECT_EQ(encode(partition_record{2, 5, {2}}), R"({"leader":2,"leader_epoch":5,"isr":[2]})");
  EXPECT_EQ(decode_partition(R"({"leader":2,"leader_epoch":5,"isr":[2],"adding_replicas":"3"})"),
            std::nullopt);
  producer_id_block_record block{2, 3000, 3999};
  EXPECT_EQ(decode_producer_id_block(encode(block)), block);
  // Ids near the top of int64 survive the JSON.
  producer_id_block_record top{1, INT64_MAX - 999, INT64_MAX};
  EXPECT_EQ(decode_producer_id_block(encode(top)), top);
}

TEST(records, malformed_values_are_errors_with_a_reason) {
  std::string why;
  EXPECT_EQ(decode_partition("not json", &why), std::nullopt);
  EXPECT_NE(why.find("not JSON"), std::string::npos);
  EXPECT_EQ(decode_partition("[1,2]", &why), std::nullopt);
  EXPECT_EQ(decode_partition(R"({"leader":1,"isr":[1]})", &why), std::nullopt);
  EXPECT_EQ(why, "no field \"leader_epoch\"");
  EXPECT_EQ(decode_partition(R"({"leader":1,"leader_epoch":-1,"isr":[1]})", &why), std::nullopt);
  EXPECT_EQ(decode_partition(R"({"leader":4294967297,"leader_epoch":1,"isr":[1]})", &why),
            std::nullopt);
  EXPECT_EQ(why, "leader is out of range");
  EXPECT_EQ(decode_partition(R"({"leader":"1","leader_epoch":1,"isr":[1]})", &why), std::nullopt);
  EXPECT_EQ(decode_topic(R"({"name":"t","replicas":[],"configs":{}})", &why), std::nullopt);
  EXPECT_EQ(decode_topic(R"({"name":"t","replicas":[[]],"configs":{}})", &why), std::nullopt);
  EXPECT_EQ(decode_topic(R"({"name":"t","replicas":[[1]],"configs":{"a":1}})", &why), std::nullopt);
  EXPECT_EQ(decode_broker(R"({"node_id":1,"rack":null,"incarnation":"x",)"
                          R"("listeners":{"P":{"host":"h","port":70000}}})",
                          &why),
            std::nullopt);
  EXPECT_EQ(why, "port is out of range");
  EXPECT_EQ(decode_producer_id_block(R"({"node_id":1,"first_id":1000})", &why), std::nullopt);
  EXPECT_EQ(why, "no field \"last_id\"");
  EXPECT_EQ(decode_producer_id_block(R"({"node_id":1,"first_id":1000,"last_id":999})", &why),
            std::nullopt);
  EXPECT_EQ(decode_producer_id_block(R"({"node_id":1,"first_id":-5,"last_id":999})", &why),
            std::nullopt);
  EXPECT_EQ(
      decode_producer_id_block(R"({"node_id":1,"first_id":0,"last_id":9223372036854775808})", &why),
      std::nullopt);
  EXPECT_EQ(why, "last_id is out of range");
  EXPECT_EQ(decode_producer_id_block(R"({"node_id":1,"first_id":0,"last_id":"999"})", &why),
            std::nullopt);
}

}  // namespace
}  // namespace sluice::server::cluster
