// The built `c3 serve` as a child process: it prints the port it chose, SIGTERM lets the request
// in flight finish with its answer, the process exits 0, and it wrote nothing in its folder.
#include <gtest/gtest.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <string>

#include "serve_common.h"
#include "util/remove_tree.h"

namespace c3::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Child {
  pid_t pid = -1;
  int out = -1;  // its stdout
};

// Runs `c3 serve ARGS` in `cwd` with stdout into a pipe.
Child spawn_serve(const fs::path& cwd, std::vector<std::string> args) {
  const std::string exe = (binary_dir() / "c3").string();
  args.insert(args.begin(), {exe, "serve"});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Its environment: ours, without progress bars (set here, not with setenv: threads run).
  static char no_progress[] = "C3_NO_PROGRESS=1";
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(no_progress);
  envp.push_back(nullptr);
  int fds[2];
  if (::pipe(fds) != 0) return {};
  Child c;
  c.pid = ::fork();
  if (c.pid == 0) {  // only async-signal-safe calls until exec
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  c.out = fds[0];
  return c;
}

// The port from the line "... listening on http://HOST:PORT"; 0 if the child ends first.
int read_port(int fd, std::string& seen) {
  char ch;
  while (::read(fd, &ch, 1) == 1) {
    seen.push_back(ch);
    if (ch != '\n') continue;
    const size_t at = seen.rfind("listening on http://");
    if (at != std::string::npos) return std::stoi(seen.substr(seen.rfind(':') + 1));
  }
  return 0;
}

TEST(ServeProcess, SigtermFinishesTheRequestInFlightAndExitsZero) {
  const fs::path cwd = binary_dir() / "test_out" / "serve_sigterm";
  remove_tree(cwd);
  fs::create_directories(cwd);
  Child c = spawn_serve(cwd, {"--model", small_model_dir(), "--port", "0", "--max-queue", "4"});
  ASSERT_GT(c.pid, 0);
  std::string seen;
  const int port = read_port(c.out, seen);
  ASSERT_GT(port, 0) << "no port in: " << seen;

  const json busy = {{"text", serve_texts()[0]}, {"stop", false}, {"length_cap", 0},
                     {"max_new_tokens", 300}};
  auto in_flight = std::async(std::launch::async, [&] {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(600, 0);
    auto r = cli.Post("/v1/roundtrip", busy.dump(), "application/json");
    return r ? std::make_pair(r->status, json::parse(r->body)) : std::make_pair(0, json());
  });
  {  // closed before the signal: an idle keep-alive connection would hold the drain up
    httplib::Client probe("127.0.0.1", port);
    ASSERT_TRUE(eventually([&] {
      auto h = probe.Get("/health");
      return h && json::parse(h->body)["queued"] == 1;
    }));
  }
  ASSERT_EQ(::kill(c.pid, SIGTERM), 0);

  const auto [status, answer] = in_flight.get();
  EXPECT_EQ(status, 200) << answer.dump();
  EXPECT_EQ(answer["ids"].size(), 300u);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(c.pid, &wstatus, 0), c.pid);
  EXPECT_TRUE(WIFEXITED(wstatus)) << "killed by signal " << WTERMSIG(wstatus);
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  ::close(c.out);
  EXPECT_FALSE(httplib::Client("127.0.0.1", port).Get("/health")) << "still answering";
  EXPECT_TRUE(fs::is_empty(cwd)) << "the server wrote files into its folder";
}

TEST(ServeProcess, RefusesAPortInUse) {
  const fs::path cwd = binary_dir() / "test_out" / "serve_port";
  fs::create_directories(cwd);
  // A port held by a plain listening socket.
  const int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  ASSERT_EQ(::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  Child c = spawn_serve(cwd, {"--model", small_model_dir(), "--port", std::to_string(port)});
  ASSERT_GT(c.pid, 0);
  std::string seen;
  EXPECT_EQ(read_port(c.out, seen), 0) << seen;
  EXPECT_NE(seen.find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << seen;
  int wstatus = 0;
  ASSERT_EQ(::waitpid(c.pid, &wstatus, 0), c.pid);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 1);
  ::close(c.out);
  ::close(holder);
}

}  // namespace
}  // namespace c3::test
