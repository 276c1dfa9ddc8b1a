// `c3 serve` in-process on 127.0.0.1 with an ephemeral port, called by real HTTP clients: the
// answers equal the CLI's, every bad input gets a 4xx with a JSON error that names what to fix
// (and the server keeps serving), the limits answer 413/429/503, /metrics speaks Prometheus, and
// shutdown() finishes what is in flight.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fmt/format.h>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "c3/document_codec.h"
#include "cli_run.h"
#include "serve/base64.h"
#include "serve/server.h"
#include "serve_common.h"
#include "util/atomic_file.h"

namespace c3::test {
namespace {

using nlohmann::json;

// A server on a free port, serving on its own thread until the object goes.
struct LiveServer {
  explicit LiveServer(serve::ServerOptions o = defaults())
      : server(small_model(), o), thread([this] { server.serve(); }) {}
  ~LiveServer() {
    server.shutdown();
    thread.join();
  }
  static serve::ServerOptions defaults() {
    serve::ServerOptions o;
    o.port = 0;
    o.http_threads = 12;
    o.max_body_bytes = 64 << 10;
    return o;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(600, 0);
    return c;
  }
  serve::Server server;
  std::thread thread;
};

json post(const LiveServer& s, const std::string& route, const std::string& body, int* status) {
  auto res = s.client().Post(route, body, "application/json");
  if (!res) {
    *status = 0;
    return {};
  }
  *status = res->status;
  return json::parse(res->body, nullptr, false);
}

TEST(ServeHttp, ConcurrentRoundTripsGiveTheCliAnswers) {
  LiveServer s;
  const auto texts = serve_texts();
  std::vector<std::future<std::pair<int, json>>> got;
  for (int round = 0; round < 2; ++round) {
    for (const auto& t : texts) {
      got.push_back(std::async(std::launch::async, [&s, t] {
        int status = 0;
        json j = post(s, "/v1/roundtrip", json{{"text", t}, {"chunk_tokens", 24}}.dump(), &status);
        return std::make_pair(status, j);
      }));
    }
  }
  for (size_t i = 0; i < got.size(); ++i) {
    auto [status, j] = got[i].get();
    ASSERT_EQ(status, 200) << j.dump();
    const json want = cli_roundtrip(texts[i % texts.size()], 24).to_json();
    for (const char* key : {"text", "ids", "tokens", "chunks", "latents", "ratio",
                            "char_precision", "exact_match"})
      EXPECT_EQ(j[key], want[key]) << key << " of request " << i;
    EXPECT_GT(j["seconds"].get<double>(), 0);
  }
}

// /v1/compress answers the bytes of `c3 compress`'s file; /v1/decompress reads them back into
// `c3 decompress`'s text.
TEST(ServeHttp, CompressGivesTheFileBytesAndDecompressReadsThem) {
  LiveServer s;
  const std::string text = serve_texts()[3];
  cascade::CompressOptions co;
  co.progress = false;
  co.max_passage_tokens = 24;
  cascade::CompressResult cr;
  const std::string file = cascade::compress_to_bytes(small_model(), text, "t", co, &cr);
  int status = 0;
  const json c = post(s, "/v1/compress", json{{"text", text}, {"chunk_tokens", 24}}.dump(), &status);
  ASSERT_EQ(status, 200) << c.dump();
  EXPECT_EQ(serve::base64_decode(c["latents"].get<std::string>(), "latents"), file);
  EXPECT_EQ(c["chunks"], cr.chunks);
  EXPECT_EQ(c["tokens"], cr.tokens);
  EXPECT_DOUBLE_EQ(c["ratio"].get<double>(), double(cr.tokens) / (cr.chunks * 32));

  std::ostringstream cli_text;
  cascade::DecompressStreamOptions dso;
  dso.progress = false;
  const auto ids = cascade::decompress_to_stream(
      small_model(), cascade::parse_latents(file, "t"), cli_text, dso);
  const json d = post(s, "/v1/decompress", json{{"latents", c["latents"]}}.dump(), &status);
  ASSERT_EQ(status, 200) << d.dump();
  EXPECT_EQ(d["text"], cli_text.str());
  int64_t n = 0;
  for (const auto& row : ids) n += static_cast<int64_t>(row.size());
  EXPECT_EQ(d["tokens"], n);
  EXPECT_EQ(d["chunks"], cr.chunks);
}

// /v1/compress with min_precision answers the file `c3 compress --min-precision` writes for the
// same text, and the counts it prints; /v1/decompress gives that file's text back exactly, as
// `c3 decompress` does. c3-small does not end a chunk with a single newline: each line is cut in
// halves down to the floor, and its last half is stored as plain tokens, between latent halves.
TEST(ServeHttp, VerifiedCompressGivesTheCliFileAndDecompressReadsItBack) {
  const std::string text =
      "Alice was beginning to get very tired of sitting by her sister on the bank.\n"
      "She had peeped into the book her sister was reading.\n"
      "It had no pictures or conversations in it.\n"
      "And what is the use of a book, thought Alice, without pictures or conversations?\n"
      "So she was considering in her own mind whether the pleasure of making a daisy-chain would "
      "be worth the trouble.";
  const std::filesystem::path dir = binary_dir() / "test_out" / "serve_verified";
  std::filesystem::create_directories(dir);
  c3::write_file_atomic(dir / "t.txt", text);
  auto cli = [&](const std::string& args) {
    const RunResult r = run_shell("C3_NO_PROGRESS=1 " + c3_binary() + " " + args + " --model " +
                                  q(small_model_dir()) + " 2>&1");
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.out;
    return r.out;
  };
  const std::string said = cli("compress --chunk-tokens 32 --min-precision 1 --verify-floor 8 " +
                               q(dir / "t.txt") + " -o " + q(dir / "v.c3"));
  cli("decompress " + q(dir / "v.c3") + " -o " + q(dir / "v.txt"));
  const std::string cli_file = c3::read_file(dir / "v.c3");
  ASSERT_EQ(c3::read_file(dir / "v.txt"), text) << "the CLI gives the text back exactly";
  const cascade::LatentFile f = cascade::parse_latents(cli_file, "v.c3");
  const cascade::ChunkRecords& rec = f.meta.records;
  ASSERT_TRUE(rec.n_plain() > 0 && f.latents.size(0) > 0 && !rec.plain.front()) << said;

  serve::ServerOptions o = LiveServer::defaults();
  o.max_body_bytes = 1 << 20;  // the file: 4 latent chunks of 32 x 256 bf16, in base64
  LiveServer s(o);
  int status = 0;
  const json c = post(s, "/v1/compress",
                      json{{"text", text}, {"chunk_tokens", 32}, {"min_precision", 1},
                           {"verify_floor", 8}}.dump(), &status);
  ASSERT_EQ(status, 200) << c.dump();
  EXPECT_EQ(serve::base64_decode(c["latents"].get<std::string>(), "latents"), cli_file);
  EXPECT_EQ(c["chunks"], rec.plain.size());
  EXPECT_EQ(c["latent_chunks"], f.latents.size(0));
  EXPECT_EQ(c["plain_chunks"], rec.n_plain());
  EXPECT_EQ(c["plain_tokens"], f.plain_tokens.numel());
  EXPECT_EQ(c["verified"], true);
  EXPECT_EQ(c["min_precision"], 1.0);
  EXPECT_EQ(c["lowest_precision"], 1.0);
  // What `c3 compress` printed, from the answer's fields.
  for (const std::string& part :
       {fmt::format("{} tokens -> {} chunks as latents + {} as plain tokens ({} tokens) = {} slots "
                    "({:.2f}x)", c["tokens"].get<int64_t>(), c["latent_chunks"].get<int64_t>(),
                    c["plain_chunks"].get<int64_t>(), c["plain_tokens"].get<int64_t>(),
                    c["slots"].get<int64_t>(), c["ratio"].get<double>()),
        fmt::format("; {} chunk encodings", c["encodes"].get<int64_t>())})
    EXPECT_NE(said.find(part), std::string::npos) << part << "\n" << said;
  EXPECT_GT(c["encodes"].get<int64_t>(), c["chunks"].get<int64_t>()) << "no chunk was halved";

  const json d = post(s, "/v1/decompress", json{{"latents", c["latents"]}}.dump(), &status);
  ASSERT_EQ(status, 200) << d.dump();
  EXPECT_EQ(d["text"], text);
  EXPECT_EQ(d["chunks"], rec.plain.size());
  EXPECT_EQ(d["plain_chunks"], rec.n_plain());
  EXPECT_EQ(d["verified"], true);
  EXPECT_EQ(d["lowest_precision"], 1.0);
  EXPECT_EQ(d["warnings"], json::array());
  // A field over a recorded setting: said in `warnings`, as `c3 decompress` says it (the chunks
  // stop at <|im_end|> well before either length cap: the same text).
  const json w = post(s, "/v1/decompress",
                      json{{"latents", c["latents"]}, {"length_cap", 2}}.dump(), &status);
  ASSERT_EQ(status, 200) << w.dump();
  EXPECT_EQ(w["text"], text);
  EXPECT_EQ(w["warnings"], json::array({"length_cap (recorded 1.5, now 2): the recorded precision "
                                        "holds for the recorded settings only"}));

  // A server whose --max-new-tokens is below what the check may decode per chunk refuses it, and
  // lowers the recorded max_new_tokens (4096) to its own, saying so.
  o.limits.max_new_tokens = o.scheduler.max_new_tokens = 40;
  LiveServer tight(o);
  const json e = post(tight, "/v1/compress",
                      json{{"text", text}, {"chunk_tokens", 32}, {"min_precision", 1}}.dump(),
                      &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(e["error"].get<std::string>().find("more than this server's --max-new-tokens 40"),
            std::string::npos) << e;
  const json t = post(tight, "/v1/decompress", json{{"latents", c["latents"]}}.dump(), &status);
  ASSERT_EQ(status, 200) << t.dump();
  EXPECT_EQ(t["text"], text);
  ASSERT_EQ(t["warnings"].size(), 1u) << t;
  EXPECT_NE(t["warnings"][0].get<std::string>().find(
                "max_new_tokens (recorded 4096, now 40, this server's --max-new-tokens)"),
            std::string::npos) << t;
}

struct BadCase {
  std::string route, body;
  int status;
  std::string needle;  // the error must contain it
};

TEST(ServeHttp, BadInputGets4xxWithWhatToFixAndTheServerGoesOn) {
  LiveServer s;
  cascade::LoadedC3 tiny =
      cascade::load_c3(testdata("c3/c3-tiny").string(), at::kFloat, at::kCPU);
  cascade::CompressOptions co;
  co.progress = false;
  const std::string foreign =
      serve::base64_encode(cascade::compress_to_bytes(tiny, "Some text.", "t", co));
  // A verified file of the served model whose one plain chunk holds an id past the vocabulary.
  const std::filesystem::path damaged_path = binary_dir() / "test_out" / "serve_damaged_plain.c3";
  std::filesystem::create_directories(damaged_path.parent_path());
  {
    cascade::LatentWriter w(damaged_path.string(), cascade::latent_meta(small_model(), "BF16"));
    w.append_plain({100, 1 << 20}, 6, 1.0);
    cascade::Verification v;
    v.floor_tokens = 32;
    w.set_verification(v);
    w.set_source(2, 6, 6);
    w.finish();
  }
  const std::string damaged = serve::base64_encode(c3::read_file(damaged_path));
  const std::vector<BadCase> cases = {
      {"/v1/roundtrip", "", 400, "body is empty"},
      {"/v1/roundtrip", "{\"text\": ", 400, "malformed JSON"},
      {"/v1/roundtrip", "[1, 2]", 400, "not an object"},
      {"/v1/roundtrip", "{}", 400, "missing field 'text'"},
      {"/v1/compress", "{\"text\": 5}", 400, "field 'text' must be a string"},
      {"/v1/roundtrip", "{\"text\": \"a\", \"beam\": 2}", 400, "unknown field 'beam'"},
      {"/v1/roundtrip", "{\"text\": \"caf\xe9\"}", 400, "not valid UTF-8 (byte offset 13)"},
      {"/v1/roundtrip", "{\"text\": \"\\udc00\"}", 400, "malformed JSON"},
      {"/v1/compress", "{\"text\": \"\"}", 400, "empty"},
      {"/v1/roundtrip", "{\"text\": \" \\n\\t\"}", 400, "only whitespace"},
      {"/v1/compress", "{\"text\": \"<|im_end|>\"}", 400, "only special tokens"},
      {"/v1/roundtrip", "{\"text\": \"a\", \"beams\": 0}", 400, "'beams' must be an integer from 1"},
      {"/v1/roundtrip", "{\"text\": \"a\", \"max_new_tokens\": 1e9}", 400, "'max_new_tokens'"},
      {"/v1/roundtrip", "{\"text\": \"a\", \"length_cap\": -1}", 400, "'length_cap' must be"},
      {"/v1/roundtrip", "{\"text\": \"a\", \"chunk_tokens\": 3}", 400, "'chunk_tokens'"},
      {"/v1/roundtrip", "{\"text\": \"a\", \"stop\": \"no\"}", 400, "'stop' must be true or false"},
      {"/v1/compress", "{\"text\": \"a\", \"latent_dtype\": \"f16\"}", 400, "'latent_dtype'"},
      {"/v1/decompress", "{}", 400, "missing field 'latents'"},
      {"/v1/decompress", "{\"latents\": \"abc!\"}", 400, "not base64: character 3"},
      {"/v1/decompress", "{\"latents\": \"abcde\"}", 400, "not a multiple of 4"},
      {"/v1/decompress", "{\"latents\": \"aGVsbG8gd29ybGQh\"}", 400, "field 'latents'"},
      {"/v1/decompress", json{{"latents", foreign}}.dump(), 400, "made by another model"},
      {"/v1/decompress", json{{"latents", damaged}}.dump(), 400,
       "field 'latents': chunk 0 holds token id 1048576, outside the tokenizer's"},
      {"/v1/compress", "{\"text\": \"a\", \"min_precision\": 1.5}", 400,
       "field 'min_precision' must be a number from 0 to 1, got 1.5"},
      {"/v1/compress", "{\"text\": \"a\", \"min_precision\": \"high\"}", 400,
       "field 'min_precision' must be a number from 0 to 1"},
      {"/v1/compress", "{\"text\": \"a\", \"min_precision\": 0.9, \"verify_floor\": -1}", 400,
       "field 'verify_floor' must be an integer from 0 to"},
      {"/v1/compress", "{\"text\": \"a\", \"verify_floor\": 8}", 400,
       "field 'verify_floor' applies only with 'min_precision'"},
      {"/v1/compress", "{\"text\": \"a\", \"beams\": 2}", 400,
       "field 'beams' applies only with 'min_precision'"},
      {"/v1/compress", "{\"text\": \"a\", \"min_precision\": 1, \"max_new_tokens\": 1e9}", 400,
       "field 'max_new_tokens' must be an integer"},
      {"/v1/roundtrip", json{{"text", std::string(70000, 'a')}}.dump(), 413, "--max-body-bytes"},
  };
  for (const auto& c : cases) {
    int status = 0;
    const json j = post(s, c.route, c.body, &status);
    EXPECT_EQ(status, c.status) << c.route << " " << c.body.substr(0, 60) << ": " << j.dump();
    ASSERT_TRUE(j.is_object() && j["error"].is_string()) << c.body.substr(0, 60) << ": " << j.dump();
    EXPECT_NE(j["error"].get<std::string>().find(c.needle), std::string::npos)
        << "wanted '" << c.needle << "' in: " << j["error"];
    EXPECT_EQ(j["status"], c.status);
  }
  // Routes and methods.
  auto cli = s.client();
  auto r = cli.Post("/v1/roundtrip", json{{"text", std::string(9000, 'a')}}.dump(),
                    "application/x-www-form-urlencoded");  // what curl -d sends
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("Content-Type: application/json"), std::string::npos) << r->body;
  r = cli.Get("/v1/roundtrip");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
  r = cli.Post("/health", "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  r = cli.Get("/v2/nothing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("POST /v1/compress"),
            std::string::npos);
  // Still serving, and right.
  r = cli.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["status"], "ok");
  int status = 0;
  const json ok = post(s, "/v1/roundtrip", json{{"text", serve_texts()[1]}}.dump(), &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(ok["text"], cli_roundtrip(serve_texts()[1]).text);
  // Every answer was counted by route and status.
  r = cli.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  for (const char* line :
       {"c3_requests_total{route=\"/v1/roundtrip\",status=\"400\"} 13",
        "c3_requests_total{route=\"/v1/roundtrip\",status=\"413\"} 2",
        "c3_requests_total{route=\"/v1/roundtrip\",status=\"200\"} 1",
        "c3_requests_total{route=\"/v1/decompress\",status=\"400\"} 6",
        "c3_requests_total{route=\"other\",status=\"404\"} 1",
        "c3_request_duration_seconds_count{route=\"/v1/compress\"} 10", "c3_tokens_in_total ",
        "c3_tokens_out_total ", "c3_decode_batch_rows_bucket{le=\"+Inf\"} ",
        "c3_encode_batch_chunks_count ", "c3_queue_depth 0"})
    EXPECT_NE(r->body.find(line), std::string::npos) << line << "\n" << r->body;
}

TEST(ServeHttp, FullQueueGets429AndLateRequestsGet503) {
  serve::ServerOptions o = LiveServer::defaults();
  o.scheduler.max_queue = 1;
  LiveServer s(o);
  const json busy = {{"text", serve_texts()[0]}, {"stop", false}, {"length_cap", 0},
                     {"max_new_tokens", 300}};
  auto first = std::async(std::launch::async, [&] {
    int status = 0;
    post(s, "/v1/roundtrip", busy.dump(), &status);
    return status;
  });
  ASSERT_TRUE(eventually([&] { return s.server.scheduler().accepted() == 1; }));
  auto r = s.client().Post("/v1/roundtrip", json{{"text", "x"}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("--max-queue"), std::string::npos);
  EXPECT_EQ(first.get(), 200);

  serve::ServerOptions t = LiveServer::defaults();
  t.request_timeout_s = 1e-3;  // no round trip finishes in a millisecond
  LiveServer late(t);
  int status = 0;
  const json j = post(late, "/v1/roundtrip", busy.dump(), &status);
  EXPECT_EQ(status, 503);
  EXPECT_NE(j["error"].get<std::string>().find("--request-timeout"), std::string::npos) << j;
  EXPECT_TRUE(eventually([&] { return late.server.scheduler().accepted() == 0; }));
  auto h = late.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// shutdown() (what SIGTERM calls): requests in flight finish with 200, then serve() returns and
// the port is closed.
TEST(ServeHttp, ShutdownFinishesWhatIsInFlight) {
  auto s = std::make_unique<LiveServer>();
  const json busy = {{"text", serve_texts()[0]}, {"stop", false}, {"length_cap", 0},
                     {"max_new_tokens", 200}};
  std::vector<std::future<int>> in_flight;
  for (int i = 0; i < 2; ++i) {
    in_flight.push_back(std::async(std::launch::async, [&] {
      int status = 0;
      post(*s, "/v1/roundtrip", busy.dump(), &status);
      return status;
    }));
  }
  ASSERT_TRUE(eventually([&] { return s->server.scheduler().accepted() == 2; }));
  const int port = s->server.port();
  s->server.shutdown();
  s->thread.join();  // serve() returned
  for (auto& f : in_flight) EXPECT_EQ(f.get(), 200);
  httplib::Client after("127.0.0.1", port);
  EXPECT_FALSE(after.Get("/health")) << "the port still answers after shutdown";
  s->thread = std::thread([] {});  // for the destructor's join
}

}  // namespace
}  // namespace c3::test
