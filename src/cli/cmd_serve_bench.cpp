// c3 serve-bench: N concurrent clients x M requests against a running `c3 serve`; prints
// throughput and p50/p99 latency, and how many requests failed (none may be lost).
#include <httplib.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "serve/load_client.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/line_reader.h"

namespace c3::cli {
namespace {

// For /v1/decompress the texts are compressed once through the server first (not timed).
std::vector<std::string> decompress_bodies(const serve::LoadOptions& o,
                                           const std::vector<std::string>& texts) {
  httplib::Client cli(o.host, o.port);
  cli.set_read_timeout(600, 0);
  std::vector<std::string> bodies;
  for (const auto& t : texts) {
    auto res = cli.Post("/v1/compress", nlohmann::json{{"text", t}}.dump(), "application/json");
    C3_CHECK(res && res->status == 200, "serve-bench: compressing a text through {}:{} failed: {}",
             o.host, o.port, res ? res->body.substr(0, 300) : httplib::to_string(res.error()));
    const auto j = nlohmann::json::parse(res->body);
    bodies.push_back(nlohmann::json{{"latents", j["latents"]}}.dump());
  }
  return bodies;
}

void setup_serve_bench(CLI::App& root) {
  auto* app = root.add_subcommand(
      "serve-bench", "Load a running `c3 serve`: N clients x M requests; throughput, p50/p99");
  static serve::LoadOptions o;
  static std::string texts_path, route = "roundtrip", json_out;
  app->add_option("--host", o.host)->capture_default_str();
  app->add_option("--port", o.port)->required();
  app->add_option("--route", route, "compress | decompress | roundtrip")
      ->capture_default_str()
      ->check(CLI::IsMember({"compress", "decompress", "roundtrip"}));
  app->add_option("--clients", o.clients, "concurrent clients")->capture_default_str();
  app->add_option("--requests", o.requests, "requests per client, one after another")
      ->capture_default_str();
  app->add_option("--texts", texts_path, "JSON lines {\"text\": ...} (.xz too), sent in turn")
      ->required();
  app->add_option("--timeout", o.timeout_s, "seconds per request")->capture_default_str();
  app->add_option("--json", json_out, "also write the result as JSON to this file ('-' = stdout)");
  app->callback([&]() {
    CorpusReader reader({texts_path});
    std::vector<std::string> texts;
    for (std::string t; reader.next(t);) texts.push_back(t);
    C3_CHECK(!texts.empty(), "serve-bench: '{}' holds no texts", texts_path);
    o.route = "/v1/" + route;
    o.bodies.clear();
    if (route == "decompress") {
      o.bodies = decompress_bodies(o, texts);
    } else {
      for (const auto& t : texts) o.bodies.push_back(nlohmann::json{{"text", t}}.dump());
    }
    const serve::LoadResult r = serve::run_load(o);
    const int64_t failed = r.sent - r.ok;
    std::printf("%s: %lld clients x %lld requests: %lld ok, %lld failed; %.2f req/s, %.0f tok/s; "
                "latency p50 %.3f s, p99 %.3f s; wall %.2f s\n",
                o.route.c_str(), (long long)o.clients, (long long)o.requests, (long long)r.ok,
                (long long)failed, r.requests_per_s(), r.tokens_per_s(), r.percentile(50),
                r.percentile(99), r.wall_s);
    if (failed > 0) {
      for (auto [status, n] : r.by_status)
        if (status != 200) std::printf("  status %d: %lld\n", status, (long long)n);
      std::printf("  first error: %s\n", r.first_error.c_str());
    }
    if (!json_out.empty()) {
      nlohmann::json j = {{"route", o.route},         {"clients", o.clients},
                          {"requests", o.requests},   {"ok", r.ok},
                          {"failed", failed},         {"req_per_s", r.requests_per_s()},
                          {"tok_per_s", r.tokens_per_s()}, {"p50_s", r.percentile(50)},
                          {"p99_s", r.percentile(99)}, {"wall_s", r.wall_s}};
      if (json_out == "-") {
        std::cout << j.dump() << "\n";
      } else {
        write_file_atomic(json_out, j.dump() + "\n");
      }
    }
    std::fflush(stdout);
    if (failed > 0) fail("{} of {} requests failed", failed, r.sent);
  });
}

}  // namespace

C3_REGISTER_COMMAND("serve-bench", setup_serve_bench);

}  // namespace c3::cli
