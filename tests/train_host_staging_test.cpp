// Reserved host memory for checkpoint snapshots: tensors come from it aligned and apart until it
// is full, begin() makes it reusable, a reservation the host cannot afford leaves nothing
// reserved, and host_copy() takes from it only inside a scope.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>

#include "train/checkpoint_file.h"
#include "train/host_staging.h"

namespace {

using c3::train::HostStaging;

uintptr_t addr(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); }

TEST(HostStaging, TakesAlignedTensorsApartUntilFull) {
  HostStaging s(/*pin=*/false);
  s.reserve_async(4 << 20, 2, -1);
  s.begin();
  ASSERT_EQ(s.reserved_bytes(), 4 << 20) << s.note();
  const at::Tensor a = s.take({3, 5}, at::kFloat);  // 60 bytes: the next starts 256 further
  const at::Tensor b = s.take({1000}, at::kBFloat16);
  ASSERT_TRUE(a.defined() && b.defined());
  EXPECT_EQ(a.sizes(), at::IntArrayRef({3, 5}));
  EXPECT_EQ(b.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(a.device().is_cpu() && a.is_contiguous());
  EXPECT_EQ(addr(a) % 256, 0u);
  EXPECT_EQ(addr(b), addr(a) + 256);
  a.fill_(1.5f);
  b.fill_(-2.0f);
  EXPECT_EQ(a.sum().item<float>(), 22.5f);
  EXPECT_EQ(b.to(at::kFloat).sum().item<float>(), -2000.0f);
  EXPECT_EQ(s.used_bytes(), 256 + 2000);

  const at::Tensor too_big = s.take({1 << 20}, at::kFloat);  // 4 MiB: no room left
  EXPECT_FALSE(too_big.defined());
  EXPECT_EQ(s.overflow_bytes(), 4 << 20);
  const at::Tensor still = s.take({16}, at::kFloat);  // what fits still comes from it
  ASSERT_TRUE(still.defined());
  EXPECT_EQ(addr(still), addr(a) + 2304);
}

TEST(HostStaging, BeginMakesItsMemoryReusable) {
  HostStaging s(/*pin=*/false);
  s.reserve_async(1 << 20, 1, -1);
  s.begin();
  const uintptr_t first = addr(s.take({100}, at::kFloat));
  s.take({100}, at::kFloat);
  s.begin();
  EXPECT_EQ(s.used_bytes(), 0);
  EXPECT_EQ(addr(s.take({7}, at::kDouble)), first);
}

TEST(HostStaging, MoreThanTheHostHasReservesNothing) {
  HostStaging s(/*pin=*/false);
  s.reserve_async(int64_t{1} << 50, 2, -1);  // a petabyte
  s.begin();
  EXPECT_EQ(s.reserved_bytes(), 0);
  EXPECT_NE(s.note().find("not reserved"), std::string::npos) << s.note();
  EXPECT_FALSE(s.take({4}, at::kFloat).defined());
}

TEST(HostStaging, HostCopyTakesFromItOnlyInsideAScope) {
  HostStaging s(/*pin=*/false);
  s.reserve_async(1 << 20, 1, -1);
  s.begin();
  const at::Tensor src = torch::arange(12, torch::kFloat).reshape({3, 4}).t();  // strided
  const uintptr_t lo = addr(s.take({1}, at::kFloat));
  at::Tensor inside;
  {
    const c3::train::HostStagingScope scope(&s);
    EXPECT_EQ(c3::train::current_host_staging(), &s);
    inside = c3::train::host_copy(src);
  }
  EXPECT_EQ(c3::train::current_host_staging(), nullptr);
  EXPECT_EQ(addr(inside), lo + 256);  // the next free place in it
  EXPECT_TRUE(inside.equal(src));
  const at::Tensor outside = c3::train::host_copy(src);
  EXPECT_TRUE(outside.equal(src));
  EXPECT_TRUE(addr(outside) < lo || addr(outside) >= lo + (1 << 20));
}

}  // namespace
