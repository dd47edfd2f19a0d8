// A Python-free runner of the AOTInductor package of a checkpoint (libtorch only).
//
// What a libtorch backend of the bridge would do at every step, without the bridge: load the
// .pt2 package once, then run the compiled model on a float32 window batch (N, F, L, *W).
//
//   aoti_runner PACKAGE INPUT.f32 OUTPUT.f32 REPS THREADS N F L W1 [W2 ...]
//
// reads N*F*L*W1*W2... float32 values from INPUT.f32, runs the model REPS times with THREADS
// intra-op threads, writes the output of the last run to OUTPUT.f32 and prints one JSON line:
// {"load_seconds": ..., "run_seconds": [...], "cpu_seconds": [...], "out_shape": [...]}.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 10) {
    std::cerr << "usage: aoti_runner PACKAGE INPUT.f32 OUTPUT.f32 REPS THREADS N F L W1 [W2 ...]\n";
    return 2;
  }
  const std::string package = argv[1], input = argv[2], output = argv[3];
  const int reps = std::stoi(argv[4]);
  at::set_num_threads(std::stoi(argv[5]));
  std::vector<int64_t> shape;
  for (int i = 6; i < argc; ++i) shape.push_back(std::stoll(argv[i]));
  int64_t numel = 1;
  for (auto s : shape) numel *= s;

  at::Tensor x = at::empty(shape, at::kFloat);
  std::ifstream in(input, std::ios::binary);
  in.read(reinterpret_cast<char *>(x.data_ptr<float>()), numel * sizeof(float));
  if (!in) {
    std::cerr << "aoti_runner: cannot read " << numel << " float32 values from " << input << "\n";
    return 3;
  }

  c10::InferenceMode guard;
  auto t0 = std::chrono::steady_clock::now();
  torch::inductor::AOTIModelPackageLoader loader(package);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::vector<at::Tensor> out;
  std::vector<double> wall, cpu;
  for (int r = 0; r < reps; ++r) {
    auto w0 = std::chrono::steady_clock::now();
    double c0 = cpu_now();
    out = loader.run({x});
    cpu.push_back(cpu_now() - c0);
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
  }
  at::Tensor y = out.at(0).contiguous();
  std::ofstream of(output, std::ios::binary);
  of.write(reinterpret_cast<const char *>(y.data_ptr<float>()), y.numel() * sizeof(float));

  std::printf("{\"load_seconds\": %.6f, \"run_seconds\": [", load_s);
  for (size_t i = 0; i < wall.size(); ++i) std::printf("%s%.6f", i ? ", " : "", wall[i]);
  std::printf("], \"cpu_seconds\": [");
  for (size_t i = 0; i < cpu.size(); ++i) std::printf("%s%.6f", i ? ", " : "", cpu[i]);
  std::printf("], \"out_shape\": [");
  for (int64_t i = 0; i < y.dim(); ++i) std::printf("%s%lld", i ? ", " : "", (long long)y.size(i));
  std::printf("]}\n");
  return 0;
}
