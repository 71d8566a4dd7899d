#pragma once
// The components the handlers may be given, made and owned by the broker (the composition root)
// and bound to each handler's parameters by the dispatch in api_registry.cc. A handler names in
// its signature the components it uses (handlers/handlers.h) and is given exactly those: no
// handler sees this struct, so none can reach a component it did not ask for, as Kafka's
// KafkaApis is built from explicit constructor dependencies rather than from the server.
//
// Threading: io thread only, like everything it names.

namespace sluice::server {

struct broker_config;
class metadata_view;
class controller_channel;
class replica_manager;
class topic_registry;
class partition_directory;
class topic_config_store;
class group_coordinator;
class producer_id_allocator;
class fetch_session_cache;
class timer_service;
struct broker_stats;
class stop_signal;
class request_budget;

struct handler_services {
  const broker_config& config;
  const metadata_view& metadata;
  // In a cluster only; null when the broker runs alone.
  controller_channel* controller;
  replica_manager* replicas;
  topic_registry& topics;
  partition_directory& partitions;
  topic_config_store& topic_configs;
  group_coordinator& groups;
  producer_id_allocator& producer_ids;
  fetch_session_cache& fetch_sessions;
  timer_service& timers;
  broker_stats& stats;
  const stop_signal& stopping;
  // Dispatch's, not a handler's: a response's bytes count in queued.max.request.bytes.
  request_budget& budget;
};

}  // namespace sluice::server
