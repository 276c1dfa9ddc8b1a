// GoogleTest entry point shared by every layer's test binary.
#include <dlfcn.h>
#include <execinfo.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

// A crash prints the running test and a raw backtrace (addresses and symbols) to stderr before
// dying as it would have: the GPU image has no gdb, and a test binary there crashed with a jump
// to address 0 inside a CPU-only test.
void say(const char* s) { (void)!write(STDERR_FILENO, s, std::strlen(s)); }

// Names an address as module+offset (and the nearest exported symbol), for addr2line later.
void describe(const char* label, uintptr_t addr) {
  char line[512];
  Dl_info info{};
  if (addr && dladdr(reinterpret_cast<void*>(addr), &info) && info.dli_fname) {
    std::snprintf(line, sizeof line, "  %s 0x%lx = %s+0x%lx (%s)\n", label, addr, info.dli_fname,
                  addr - reinterpret_cast<uintptr_t>(info.dli_fbase),
                  info.dli_sname ? info.dli_sname : "?");
  } else {
    std::snprintf(line, sizeof line, "  %s 0x%lx (no module)\n", label, addr);
  }
  say(line);
}

void on_fatal_signal(int sig, siginfo_t* si, void* ctx) {
  const char* what = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGILL ? "SIGILL" : "SIGFPE";
  char head[256];
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::snprintf(head, sizeof head, "\n*** %s (address %p) in test %s.%s\n", what, si->si_addr,
                t ? t->test_suite_name() : "?", t ? t->name() : "?");
  say(head);
  // A jump to address 0 leaves no frame to unwind from: the faulting pc, then the words on top of
  // the stack that point into code (the return address of the bad call is among them).
  const auto* uc = static_cast<const ucontext_t*>(ctx);
  describe("pc", static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]));
  const auto* sp = reinterpret_cast<const uintptr_t*>(uc->uc_mcontext.gregs[REG_RSP]);
  for (int i = 0, shown = 0; i < 64 && shown < 12; ++i) {
    Dl_info info{};
    if (sp[i] > 4096 && dladdr(reinterpret_cast<void*>(sp[i]), &info) && info.dli_fname) {
      char label[32];
      std::snprintf(label, sizeof label, "sp[%d]", i);
      describe(label, sp[i]);
      ++shown;
    }
  }
  say("backtrace:\n");
  void* frames[64];
  const int depth = backtrace(frames, 64);
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Under ASan the sanitizer's own handler reports crashes better.
  if (!std::getenv("ASAN_OPTIONS") && !std::getenv("C3_NO_CRASH_HANDLER")) {
    struct sigaction sa {};
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO;
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaction(sig, &sa, nullptr);
  }
  const int rc = RUN_ALL_TESTS();
  // With CUDA LibTorch 2.11, a test binary that used CUDA crashed after its last test, in static
  // destruction at exit (a jump to address 0; seen on H100 and H200), losing
  // its buffered output and turning a pass into exit 139. The results are final here: flush them
  // and leave without running static destructors.
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}
