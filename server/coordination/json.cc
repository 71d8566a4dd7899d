// Boost.JSON's implementation, compiled once here rather than linked as libboost_json: the broker
// links no Boost library (every other part of Boost it uses is header-only), so it needs no
// Boost runtime package, and the sanitizer and fuzz builds instrument this code like the rest.
// A translation unit of its own, so that editing etcd_store.cc does not recompile it.
#include <boost/json/src.hpp>
