// The subset of CUDA that omnid's kernels use, on the CPU, for tests on machines without a GPU.
//
// A launch runs the grid's blocks one after another; each block's threads are real OS threads, so
// warp shuffles are true exchanges: every lane publishes its value, the warp meets at a barrier,
// reads its partner's value, and meets again before the slots are reused. Kernels therefore must
// keep shuffles in warp-uniform control flow, as the hardware's full-mask shuffles require too.
// Blocks must be whole warps. There is no shared memory and no __syncthreads: the kernels do not
// use them.
#pragma once

#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline

struct omnid_dim3 {
  unsigned x = 1, y = 1, z = 1;
};

inline thread_local omnid_dim3 threadIdx;
inline thread_local omnid_dim3 blockIdx;
// Set before a launch and only read while it runs.
inline omnid_dim3 blockDim;
inline omnid_dim3 gridDim;

struct omnid_warp {
  std::barrier<> meet{32};
  unsigned slots[32];
};

inline thread_local omnid_warp *omnid_this_warp = nullptr;

inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}

template <typename T> T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  const unsigned lane = threadIdx.x % 32;
  unsigned bits;
  std::memcpy(&bits, &v, 4);
  omnid_this_warp->slots[lane] = bits;
  omnid_this_warp->meet.arrive_and_wait();
  const unsigned other = omnid_this_warp->slots[lane ^ (unsigned)lane_mask];
  omnid_this_warp->meet.arrive_and_wait();
  T out;
  std::memcpy(&out, &other, 4);
  return out;
}

// One launch at a time: blockDim and gridDim are process-wide, as the tests' threads share them.
inline std::mutex omnid_launch_lock;

// Launches `kernel` over a 1-D grid of 1-D blocks and waits for it.
template <typename... Params, typename... Args>
void omnid_launch(void (*kernel)(Params...), unsigned grid, unsigned block, Args... args) {
  if (block == 0 || block % 32 != 0 || block > 1024) throw std::invalid_argument("block size must be whole warps");
  const std::lock_guard<std::mutex> one_at_a_time(omnid_launch_lock);
  blockDim = omnid_dim3{block, 1, 1};
  gridDim = omnid_dim3{grid, 1, 1};
  for (unsigned b = 0; b < grid; ++b) {
    std::vector<std::unique_ptr<omnid_warp>> warps;
    for (unsigned w = 0; w < block / 32; ++w) warps.push_back(std::make_unique<omnid_warp>());
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t) {
      threads.emplace_back([&, b, t] {
        threadIdx = omnid_dim3{t, 0, 0};
        blockIdx = omnid_dim3{b, 0, 0};
        omnid_this_warp = warps[t / 32].get();
        kernel(static_cast<Params>(args)...);
      });
    }
    for (auto &th : threads) th.join();
  }
}
