#include "storage/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace sluice::storage {

namespace {

constexpr std::string_view base64url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      lines.push_back(text);
      break;
    }
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return lines;
}

template <class T>
bool parse_int(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), out);
  return err == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string format_offset_checkpoint(const offset_map& offsets) {
  std::string out = "0\n" + std::to_string(offsets.size()) + "\n";
  for (const auto& [tp, offset] : offsets) {
    out += tp.topic;
    out += ' ';
    out += std::to_string(tp.partition);
    out += ' ';
    out += std::to_string(offset);
    out += '\n';
  }
  return out;
}

std::optional<offset_map> parse_offset_checkpoint(std::string_view text) {
  std::vector<std::string_view> lines = split_lines(text);
  size_t count = 0;
  if (lines.size() < 2 || lines[0] != "0" || !parse_int(lines[1], count)) return std::nullopt;
  if (lines.size() != count + 2) return std::nullopt;
  offset_map out;
  for (size_t i = 2; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    size_t a = line.find(' ');
    size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
    if (b == std::string_view::npos || line.find(' ', b + 1) != std::string_view::npos) {
      return std::nullopt;
    }
    topic_partition tp{std::string(line.substr(0, a)), 0};
    int64_t offset = 0;
    if (tp.topic.empty() || !parse_int(line.substr(a + 1, b - a - 1), tp.partition) ||
        !parse_int(line.substr(b + 1), offset)) {
      return std::nullopt;
    }
    out[std::move(tp)] = offset;
  }
  return out;
}

std::string uuid_to_base64(const wire::uuid& id) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t byte : id) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += base64url[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += base64url[(acc << (6 - bits)) & 0x3f];
  return out;
}

std::optional<wire::uuid> uuid_from_base64(std::string_view text) {
  if (text.size() != 22) return std::nullopt;
  wire::uuid id{};
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (char c : text) {
    size_t v = base64url.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      id[n++] = static_cast<uint8_t>(acc >> bits);
    }
  }
  // 22 characters carry 132 bits: the last 4 must be zero in a canonical encoding.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return id;
}

std::string format_partition_metadata(const wire::uuid& topic_id) {
  return "version: 0\ntopic_id: " + uuid_to_base64(topic_id) + "\n";
}

std::optional<wire::uuid> parse_partition_metadata(std::string_view text) {
  std::vector<std::string_view> lines = split_lines(text);
  constexpr std::string_view version = "version: ";
  constexpr std::string_view topic_id = "topic_id: ";
  if (lines.size() < 2 || !lines[0].starts_with(version) || !lines[1].starts_with(topic_id)) {
    return std::nullopt;
  }
  int v = -1;
  if (!parse_int(lines[0].substr(version.size()), v) || v != 0) return std::nullopt;
  return uuid_from_base64(lines[1].substr(topic_id.size()));
}

std::string partition_dir_name(const topic_partition& tp) {
  return tp.topic + "-" + std::to_string(tp.partition);
}

std::optional<topic_partition> parse_partition_dir_name(std::string_view name) {
  size_t dash = name.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  topic_partition tp{std::string(name.substr(0, dash)), 0};
  std::string_view digits = name.substr(dash + 1);
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  if (!parse_int(digits, tp.partition) || !is_valid_topic_name(tp.topic)) return std::nullopt;
  return tp;
}

bool is_valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace sluice::storage
