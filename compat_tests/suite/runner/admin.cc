// The Admin API through librdkafka: topics, partitions, configs, DeleteRecords and groups, with
// the error codes Kafka answers for requests it refuses.

#include <algorithm>
#include <string>
#include <vector>

#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/suite/runner/suite.h"

namespace sluice::compat::suite {
namespace {

using namespace std::chrono_literals;

bool listed(context& ctx, const std::string& topic) {
  return ctx.admin_client().topics().count(topic);
}

// CreateTopics creates a topic that Metadata then lists with its partitions; creating it again is
// TOPIC_ALREADY_EXISTS and an illegal name INVALID_TOPIC_EXCEPTION (Kafka's Topic.validate:
// [a-zA-Z0-9._-], at most 249 characters). DeleteTopics removes it, and deleting it again is
// UNKNOWN_TOPIC_OR_PARTITION (Kafka's DeleteTopicsRequest handling).
void create_delete_topics(context& ctx) {
  ctx.require(api::create_topics);
  ctx.require(api::delete_topics);
  admin& a = ctx.admin_client();
  std::string topic = ctx.create_topic({}, 3);
  check(a.topics()[topic].size() == 3, "Metadata does not show 3 partitions");

  admin::topic_error again = a.create_topic(topic, 3, ctx.default_replication_factor());
  check(again.err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
        "creating an existing topic answered " + err_name(again.err));

  admin::topic_error bad =
      a.create_topic(ctx.name("bad/name"), 1, ctx.default_replication_factor());
  check(bad.err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
        "creating a topic named with '/' answered " + err_name(bad.err));

  admin::topic_error deleted = a.delete_topic(topic);
  check(deleted.err == RD_KAFKA_RESP_ERR_NO_ERROR, "DeleteTopics: " + err_name(deleted.err));
  check(ctx.wait_for([&] { return !listed(ctx, topic); }),
        "Metadata still lists the deleted topic");
  admin::topic_error gone = a.delete_topic(topic);
  check(gone.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        "deleting a deleted topic answered " + err_name(gone.err));
}

// CreatePartitions (KIP-195) raises the partition count; asking for fewer partitions than the
// topic has is INVALID_PARTITIONS (Kafka's AdminManager/ZkAdminManager.createPartitions).
void create_partitions(context& ctx) {
  ctx.require(api::create_partitions);
  admin& a = ctx.admin_client();
  std::string topic = ctx.create_topic({}, 1);
  admin::topic_error e = a.create_partitions(topic, 3);
  check(e.err == RD_KAFKA_RESP_ERR_NO_ERROR, "CreatePartitions to 3: " + err_name(e.err));
  check(ctx.wait_for([&] {
    auto leaders = a.topics()[topic];
    return leaders.size() == 3 &&
           std::all_of(leaders.begin(), leaders.end(), [](int32_t l) { return l >= 0; });
  }),
        "Metadata does not show 3 partitions with leaders");
  producer p(ctx.bootstrap());
  size_t id = p.produce(topic, 2, std::nullopt, "to the new partition");
  check(p.flush(ctx.timeout()), "the record to the new partition was not delivered");
  check(p.delivery_of(id).err == RD_KAFKA_RESP_ERR_NO_ERROR,
        "producing to the new partition: " + err_name(p.delivery_of(id).err));
  admin::topic_error fewer = a.create_partitions(topic, 2);
  check(fewer.err == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS,
        "decreasing the partition count answered " + err_name(fewer.err));
}

// DescribeConfigs of a topic returns its configs, set ones with the value given at creation and
// defaults for the rest (Kafka's ConfigHelper / LogConfig).
void describe_configs(context& ctx) {
  ctx.require(api::describe_configs);
  std::string topic = ctx.create_topic({}, 1, {{"retention.ms", "123456789"}});
  auto configs = ctx.admin_client().describe_topic_configs(topic);
  check(configs["retention.ms"] == "123456789",
        "retention.ms is " + configs["retention.ms"].value_or("null") + ", created as 123456789");
  for (const char* key : {"cleanup.policy", "segment.bytes", "max.message.bytes"})
    check(configs.count(key) && configs[key].has_value(),
          std::string("DescribeConfigs does not show ") + key);
  check(configs["cleanup.policy"] == "delete",
        "cleanup.policy defaults to " + configs["cleanup.policy"].value_or("null"));
}

// AlterConfigs (the legacy, whole-set API that librdkafka 2.0.2 sends) changes a topic config,
// which DescribeConfigs then shows; an unknown config name is INVALID_CONFIG (Kafka's
// LogConfig.validateNames).
void alter_configs(context& ctx) {
  ctx.require(api::alter_configs);
  ctx.require(api::describe_configs);
  admin& a = ctx.admin_client();
  std::string topic = ctx.create_topic({}, 1);
  admin::topic_error e = a.alter_topic_configs(topic, {{"retention.ms", "3600000"}});
  check(e.err == RD_KAFKA_RESP_ERR_NO_ERROR, "AlterConfigs: " + err_name(e.err) + " " + e.message);
  check(ctx.wait_for([&] { return a.describe_topic_configs(topic)["retention.ms"] == "3600000"; }),
        "DescribeConfigs does not show the altered retention.ms");
  admin::topic_error unknown = a.alter_topic_configs(topic, {{"no.such.config", "1"}});
  check(unknown.err == RD_KAFKA_RESP_ERR_INVALID_CONFIG,
        "altering an unknown config answered " + err_name(unknown.err));
}

// DeleteRecords (KIP-107) moves the log start offset: the low watermark follows, a consumer
// reading from the beginning starts there, and an offset past the high watermark is
// OFFSET_OUT_OF_RANGE (Kafka's Log.maybeIncrementLogStartOffset via ReplicaManager.deleteRecords).
void delete_records(context& ctx) {
  ctx.require(api::delete_records);
  admin& a = ctx.admin_client();
  std::string topic = ctx.create_topic({}, 1);
  {
    producer p(ctx.bootstrap());
    for (int i = 0; i < 10; ++i)
      p.produce(topic, 0, std::nullopt, std::to_string(i));
    check(p.flush(ctx.timeout()), "not every record was delivered within the deadline");
    check(p.acked_count() == 10, "only " + std::to_string(p.acked_count()) + " of 10 delivered");
  }
  auto [e, low] = a.delete_records(topic, 0, 4);
  check(e.err == RD_KAFKA_RESP_ERR_NO_ERROR, "DeleteRecords below 4: " + err_name(e.err));
  check(low == 4, "DeleteRecords answered low watermark " + std::to_string(low) + ", expected 4");
  auto [lw, hw] = watermarks(a.get(), topic, 0);
  check(lw == 4 && hw == 10,
        "watermarks " + std::to_string(lw) + " and " + std::to_string(hw) + ", expected 4 and 10");
  simple_consumer c(ctx.bootstrap(), topic);
  c.start(0, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> got = c.consume(1, ctx.timeout());
  check(got.size() == 1 && got[0].offset == 4,
        "a consumer from the beginning did not start at offset 4");
  auto [beyond, unused] = a.delete_records(topic, 0, 100);
  check(beyond.err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE,
        "DeleteRecords past the high watermark answered " + err_name(beyond.err));
}

// ListGroups shows a group with a member, DescribeGroups its state and members, and DeleteGroups
// refuses it while it has members (NON_EMPTY_GROUP) and removes it once empty (Kafka's
// GroupCoordinator.handleDeleteGroups).
void groups(context& ctx) {
  for (int16_t key : {api::list_groups, api::describe_groups, api::delete_groups, api::join_group,
                      api::sync_group, api::offset_commit})
    ctx.require(key);
  admin& a = ctx.admin_client();
  std::string topic = ctx.create_topic({}, 1);
  std::string group = ctx.name();
  {
    producer p(ctx.bootstrap());
    p.produce(topic, 0, std::nullopt, "one");
    check(p.flush(ctx.timeout()) && p.acked_count() == 1, "the record was not delivered");
  }
  group_consumer member(ctx.bootstrap(), group, topic);
  std::optional<message> got;
  check(ctx.wait_for([&] {
    if (!got) got = member.poll(50ms);
    return got.has_value();
  }),
        "the member read nothing");
  check(member.commit(*got) == RD_KAFKA_RESP_ERR_NO_ERROR, "OffsetCommit failed");

  std::vector<std::string> all = a.list_groups();
  check(std::find(all.begin(), all.end(), group) != all.end(),
        "ListGroups does not list the group");
  admin::group_description d = a.describe_group(group);
  check(!d.error.err, "DescribeGroups: " + err_name(d.error.err));
  check(d.state == "Stable" && d.member_ids.size() == 1,
        "DescribeGroups answered state " + d.state + " with " +
            std::to_string(d.member_ids.size()) + " members, expected Stable with 1");
  admin::topic_error busy = a.delete_group(group);
  check(busy.err == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP,
        "deleting a group with a member answered " + err_name(busy.err));

  member.close();
  admin::topic_error e = a.delete_group(group);
  check(e.err == RD_KAFKA_RESP_ERR_NO_ERROR, "deleting the empty group: " + err_name(e.err));
  check(ctx.wait_for([&] {
    std::vector<std::string> now = a.list_groups();
    return std::find(now.begin(), now.end(), group) == now.end();
  }),
        "ListGroups still lists the deleted group");
  check(a.committed(group, topic, {0})[0] == -1, "the deleted group's offset is still committed");
}

}  // namespace

void add_admin_scenarios(std::vector<scenario>& out) {
  out.push_back({"rdkafka", "admin.create_delete_topics", create_delete_topics});
  out.push_back({"rdkafka", "admin.create_partitions", create_partitions});
  out.push_back({"rdkafka", "admin.describe_configs", describe_configs});
  out.push_back({"rdkafka", "admin.alter_configs", alter_configs});
  out.push_back({"rdkafka", "admin.delete_records", delete_records});
  out.push_back({"rdkafka", "admin.groups", groups});
}

}  // namespace sluice::compat::suite
