// Consumer groups through librdkafka's high-level consumer: join, commit and resume, rebalance
// between members, and static membership.

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/suite/runner/suite.h"

namespace sluice::compat::suite {
namespace {

using namespace std::chrono_literals;

void require_groups(context& ctx) {
  for (int16_t key : {api::find_coordinator, api::join_group, api::sync_group, api::heartbeat,
                      api::leave_group, api::offset_commit, api::offset_fetch})
    ctx.require(key);
}

// `count` records to each partition of `topic`, values "p<partition>-<i>".
void fill(context& ctx, const std::string& topic, int partitions, int count) {
  producer p(ctx.bootstrap());
  for (int part = 0; part < partitions; ++part) {
    for (int i = 0; i < count; ++i)
      p.produce(topic, part, std::nullopt, "p" + std::to_string(part) + "-" + std::to_string(i));
  }
  check(p.flush(ctx.timeout()), "not every record was delivered within the deadline");
  for (const producer::delivery& d : p.deliveries())
    check(d.err == RD_KAFKA_RESP_ERR_NO_ERROR, "a record failed: " + err_name(d.err));
}

std::string join(const std::vector<int32_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i)
    out += (i ? "," : "") + std::to_string(v[i]);
  return out + "]";
}

// Polls every consumer in turn until `done` holds or the deadline passes. Members of one group
// must all be polled: a member that is not polled does not rejoin, and the rebalance waits for it.
bool poll_until(context& ctx, const std::vector<group_consumer*>& members,
                const std::function<bool()>& done, std::vector<message>* received = nullptr) {
  return ctx.wait_for([&] {
    for (group_consumer* m : members) {
      if (std::optional<message> msg = m->poll(20ms); msg && received) received->push_back(*msg);
    }
    return done();
  });
}

// A consumer joins a group (FindCoordinator, JoinGroup, SyncGroup), reads, and commits
// (OffsetCommit); OffsetFetch returns the commit, and the next member of the group resumes from
// it, re-reading nothing before it (Kafka's GroupCoordinator and the consumer's position logic,
// KIP-62 for the protocol flow).
void commit_resume(context& ctx) {
  require_groups(ctx);
  constexpr int partitions = 2;
  std::string topic = ctx.create_topic({}, partitions);
  std::string group = ctx.name();
  fill(ctx, topic, partitions, 10);

  std::map<int32_t, int64_t> committed;
  {
    group_consumer first(ctx.bootstrap(), group, topic);
    std::vector<message> got;
    check(poll_until(
              ctx, {&first}, [&] { return got.size() >= 6; }, &got),
          "the first member read " + std::to_string(got.size()) + " of 6 records");
    // Commit what was read, per partition.
    std::map<int32_t, message> last;
    for (size_t i = 0; i < 6; ++i)
      last[got[i].partition] = got[i];
    for (const auto& [part, m] : last) {
      rd_kafka_resp_err_t e = first.commit(m);
      check(e == RD_KAFKA_RESP_ERR_NO_ERROR, "OffsetCommit: " + err_name(e));
      committed[part] = m.offset + 1;
    }
    first.close();
  }

  std::map<int32_t, int64_t> fetched = ctx.admin_client().committed(group, topic, {0, 1});
  for (int32_t part = 0; part < partitions; ++part) {
    int64_t expected = committed.count(part) ? committed[part] : -1;
    check(fetched[part] == expected, "OffsetFetch of partition " + std::to_string(part) +
                                         " answered " + std::to_string(fetched[part]) +
                                         ", committed " + std::to_string(expected));
  }

  group_consumer second(ctx.bootstrap(), group, topic);
  std::vector<message> got;
  size_t remaining = 0;
  for (int32_t part = 0; part < partitions; ++part)
    remaining += static_cast<size_t>(10 - std::max<int64_t>(0, committed[part]));
  check(poll_until(
            ctx, {&second}, [&] { return got.size() >= remaining; }, &got),
        "the second member read " + std::to_string(got.size()) + " of the " +
            std::to_string(remaining) + " uncommitted records");
  std::map<int32_t, int64_t> first_offset;
  for (const message& m : got) {
    if (!first_offset.count(m.partition)) first_offset[m.partition] = m.offset;
  }
  for (const auto& [part, offset] : first_offset) {
    int64_t expected = committed.count(part) ? committed[part] : 0;
    check(offset == expected, "the second member resumed partition " + std::to_string(part) +
                                  " at offset " + std::to_string(offset) + ", committed " +
                                  std::to_string(expected));
  }
}

// Two members of a group split the partitions between them; when one leaves (LeaveGroup), the
// other is assigned all of them (the consumer group protocol, KIP-62/KIP-429; librdkafka's range
// assignor runs on the group leader).
void rebalance(context& ctx) {
  require_groups(ctx);
  constexpr int partitions = 4;
  std::string topic = ctx.create_topic({}, partitions);
  std::string group = ctx.name();
  auto sorted_union = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    std::sort(a.begin(), a.end());
    return a;
  };
  std::vector<int32_t> all(static_cast<size_t>(ctx.partition_count(topic)));
  std::iota(all.begin(), all.end(), 0);

  group_consumer a(ctx.bootstrap(), group, topic);
  check(poll_until(ctx, {&a}, [&] { return a.assignment() == all; }),
        "the only member was assigned " + join(a.assignment()) + ", not every partition");
  {
    group_consumer b(ctx.bootstrap(), group, topic);
    bool split = poll_until(ctx, {&a, &b}, [&] {
      return !a.assignment().empty() && !b.assignment().empty() &&
             sorted_union(a.assignment(), b.assignment()) == all;
    });
    check(split, "two members hold " + join(a.assignment()) + " and " + join(b.assignment()) +
                     ", not a split of every partition");
    b.close();
  }
  check(poll_until(ctx, {&a}, [&] { return a.assignment() == all; }),
        "after the other member left, the remaining one holds " + join(a.assignment()));
}

// Static membership (KIP-345, JoinGroup v5+): a member with group.instance.id does not leave the
// group when it closes; the group keeps it until its session times out, and a consumer that comes
// back with the same instance id takes its place and its assignment.
void static_membership(context& ctx) {
  require_groups(ctx);
  ctx.require(api::join_group, 5);
  ctx.require(api::describe_groups, 4);  // group_instance_id in the description
  constexpr int partitions = 2;
  std::string topic = ctx.create_topic({}, partitions);
  std::string group = ctx.name();
  const std::map<std::string, std::string> settings = {{"group.instance.id", "instance-a"},
                                                       {"session.timeout.ms", "6000"}};
  std::vector<int32_t> all(static_cast<size_t>(ctx.partition_count(topic)));
  std::iota(all.begin(), all.end(), 0);
  std::string first_member;
  {
    group_consumer first(ctx.bootstrap(), group, topic, settings);
    check(poll_until(ctx, {&first}, [&] { return first.assignment() == all; }),
          "the static member was assigned " + join(first.assignment()));
    first_member = rd_kafka_memberid(first.get()) ? rd_kafka_memberid(first.get()) : "";
    first.close();
  }
  admin::group_description d = ctx.admin_client().describe_group(group);
  check(!d.error.err, "DescribeGroups: " + err_name(d.error.err));
  check(d.instance_ids == std::vector<std::string>{"instance-a"},
        "after the static member closed, the group holds " + std::to_string(d.member_ids.size()) +
            " members; a static member stays until its session times out");

  group_consumer again(ctx.bootstrap(), group, topic, settings);
  check(poll_until(ctx, {&again}, [&] { return again.assignment() == all; }),
        "the returning static member was assigned " + join(again.assignment()));
  d = ctx.admin_client().describe_group(group);
  check(d.instance_ids == std::vector<std::string>{"instance-a"},
        "the returning static member did not replace the old one: " +
            std::to_string(d.member_ids.size()) + " members");
  check(d.member_ids.size() == 1 && d.member_ids[0] != first_member,
        "the returning static member kept the old member id");
  // Its close sends no LeaveGroup either: the group stays non-empty until the session timeout
  // (6 s, Kafka's group.min.session.timeout.ms), which the run's cleanup waits out.
  again.close();
}

}  // namespace

void add_group_scenarios(std::vector<scenario>& out) {
  out.push_back({"rdkafka", "groups.commit_resume", commit_resume});
  out.push_back({"rdkafka", "groups.rebalance", rebalance});
  out.push_back({"rdkafka", "groups.static_membership", static_membership});
}

}  // namespace sluice::compat::suite
