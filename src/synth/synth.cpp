#include "synth/synth.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>

#include <fmt/core.h>

#include "core/cancel.h"
#include "core/error.h"
#include "io/model.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t k_chunk_bytes = 4u << 20;
constexpr std::uint64_t k_golden = 0x9E3779B97F4A7C15ull;
// Uniform(-a, a) has standard deviation a / sqrt(3); we want 0.02.
constexpr float k_weight_half_width = 0.02f * 1.7320508f;
constexpr float k_norm_half_width = 0.05f;
constexpr int k_dim_max = 1 << 20;
constexpr int k_layers_max = 4096;
constexpr int k_gpt2_positions = 1024;
constexpr int k_bos_id = 1;
constexpr int k_eos_id = 2;

// splitmix64's finaliser (Steele, Lea, Flood, "Fast splittable pseudorandom
// number generators", 2014).
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s)
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

std::uint64_t stream_key(std::uint64_t seed, std::string_view tensor) {
  return mix64(mix64(seed) ^ fnv1a(tensor));
}

float uniform_from_bits(std::uint64_t bits16) {
  return (static_cast<float>(bits16 & 0xffffu) + 0.5f) * (1.0f / 32768.0f) - 1.0f;
}

// Calls f(i, u) for elements [first, first + n), u ~ uniform(-1, 1) a pure
// function of (key, element index): one 64-bit counter hash gives four 16-bit
// values, so element e uses bits 16 * (e % 4) of hash number e / 4.
template <typename F>
void for_each_uniform(std::uint64_t key, std::uint64_t first, std::uint64_t n, F&& f) {
  auto word_at = [key](std::uint64_t e) { return mix64(key + ((e >> 2) + 1) * k_golden); };
  std::uint64_t i = 0;
  for (; i < n && ((first + i) & 3) != 0; ++i) {
    f(i, uniform_from_bits(word_at(first + i) >> (((first + i) & 3) * 16)));
  }
  for (; i + 4 <= n; i += 4) {
    const std::uint64_t word = word_at(first + i);
    f(i, uniform_from_bits(word));
    f(i + 1, uniform_from_bits(word >> 16));
    f(i + 2, uniform_from_bits(word >> 32));
    f(i + 3, uniform_from_bits(word >> 48));
  }
  for (; i < n; ++i)
    f(i, uniform_from_bits(word_at(first + i) >> (((first + i) & 3) * 16)));
}

template <DType D, typename T>
void store(unsigned char* dst, std::uint64_t i, T v) {
  if constexpr (D == DType::BF16) {
    const std::uint16_t h = f32_to_bf16(static_cast<float>(v));
    std::memcpy(dst + 2 * i, &h, 2);
  } else if constexpr (D == DType::F16) {
    const std::uint16_t h = f32_to_f16(static_cast<float>(v));
    std::memcpy(dst + 2 * i, &h, 2);
  } else if constexpr (D == DType::F32) {
    const float f = static_cast<float>(v);
    std::memcpy(dst + 4 * i, &f, 4);
  } else {
    const double d = v;
    std::memcpy(dst + 8 * i, &d, 8);
  }
}

template <DType D>
double load(const unsigned char* src, std::uint64_t i) {
  if constexpr (D == DType::F64) {
    double v;
    std::memcpy(&v, src + 8 * i, 8);
    return v;
  } else if constexpr (D == DType::F32) {
    float v;
    std::memcpy(&v, src + 4 * i, 4);
    return v;
  } else {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    return D == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

// Calls f(std::integral_constant<DType, D>{}) for the float dtype `d`.
template <typename F>
void dispatch_float(DType d, F&& f) {
  switch (d) {
    case DType::BF16:
      return f(std::integral_constant<DType, DType::BF16>{});
    case DType::F16:
      return f(std::integral_constant<DType, DType::F16>{});
    case DType::F32:
      return f(std::integral_constant<DType, DType::F32>{});
    case DType::F64:
      return f(std::integral_constant<DType, DType::F64>{});
    default:
      throw Error(ErrorKind::internal, "synth: not a float dtype");
  }
}

struct Chunk {
  std::size_t tensor;
  std::uint64_t offset;  // bytes into the tensor
  std::uint64_t len;
};

std::vector<Chunk> make_chunks(const std::vector<TensorSpec>& specs) {
  std::vector<Chunk> chunks;
  for (std::size_t t = 0; t < specs.size(); ++t) {
    const std::uint64_t nbytes = specs[t].nbytes();
    for (std::uint64_t off = 0; off < nbytes; off += k_chunk_bytes) {
      chunks.push_back({t, off, std::min(k_chunk_bytes, nbytes - off)});
    }
  }
  return chunks;
}

// Runs work(chunk, buffer) over all chunks on `threads` threads, each with its
// own k_chunk_bytes buffer. The first exception stops the others and is rethrown.
void run_chunks(const std::vector<Chunk>& chunks, int threads, const CancelToken& cancel,
                const std::function<void(const Chunk&, unsigned char*)>& work) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    CancelScope scope(cancel);
    try {
      std::vector<unsigned char> buffer(k_chunk_bytes);
      while (!failed.load(std::memory_order_relaxed)) {
        const std::size_t i = next.fetch_add(1);
        if (i >= chunks.size()) break;
        throw_if_cancelled();
        work(chunks[i], buffer.data());
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  const int n = std::clamp<int>(threads, 1, 64);
  std::vector<std::thread> pool;
  for (int i = 1; i < n; ++i)
    pool.emplace_back(worker);
  worker();
  for (auto& t : pool)
    t.join();
  if (error) std::rethrow_exception(error);
}

bool is_norm_weight(const TensorSpec& spec) {
  return spec.shape.size() == 1 && spec.name.ends_with(".weight");
}

bool family_always_tied(std::string_view family) {
  return family == "gemma2" || family == "gpt2";
}

bool is_tied(const SynthOptions& o) {
  return family_always_tied(o.family) || o.tied.value_or(false);
}

template <typename Json>
std::string dump(const Json& j) {
  return j.dump(2) + "\n";
}

void write_fresh(const SynthOptions& options, const fs::path& out_dir) {
  ModelWriter writer(out_dir, synth_tensor_specs(options),
                     {.shard_size_max = options.shard_size, .force = options.force});
  writer.write_file("config.json", dump(synth_config(options)));
  writer.write_file("generation_config.json", dump(synth_generation_config()));
  writer.write_file("tokenizer.json", dump(synth_tokenizer(options.vocab)));
  writer.write_file("tokenizer_config.json", dump(synth_tokenizer_config()));

  const auto& specs = writer.tensors();
  const float norm_center = options.family == "gemma2" ? 0.0f : 1.0f;
  run_chunks(
      make_chunks(specs), options.threads, options.cancel, [&](const Chunk& c, unsigned char* buf) {
        const TensorSpec& spec = specs[c.tensor];
        const std::uint64_t elem = static_cast<std::uint64_t>(dtype_bits(spec.dtype) / 8);
        const bool norm = is_norm_weight(spec);
        const float center = norm ? norm_center : 0.0f;
        const float half_width = norm ? k_norm_half_width : k_weight_half_width;
        dispatch_float(spec.dtype, [&](auto d) {
          for_each_uniform(
              stream_key(options.seed, spec.name), c.offset / elem, c.len / elem,
              [&](std::uint64_t i, float u) { store<d()>(buf, i, center + half_width * u); });
        });
        writer.write(c.tensor, c.offset, buf, c.len);
      });
  writer.commit();
}

// Mean |w| over the first k_like_sample finite elements.
double typical_magnitude(const SafetensorsFile& file, const TensorInfo& info) {
  const std::uint64_t elem = static_cast<std::uint64_t>(dtype_bits(info.dtype) / 8);
  const std::uint64_t n = std::min<std::uint64_t>(info.nbytes() / elem, k_like_sample);
  std::vector<unsigned char> buf(n * elem);
  file.read(info, 0, buf.data(), buf.size());
  double sum = 0;
  std::uint64_t finite = 0;
  dispatch_float(info.dtype, [&](auto d) {
    for (std::uint64_t i = 0; i < n; ++i) {
      const double v = load<d()>(buf.data(), i);
      if (std::isfinite(v)) {
        sum += std::fabs(v);
        ++finite;
      }
    }
  });
  return finite ? sum / static_cast<double>(finite) : 0.0;
}

void write_like(const SynthOptions& options, const fs::path& out_dir) {
  if (!std::isfinite(options.delta_scale) || options.delta_scale < 0) {
    throw Error(ErrorKind::config, "delta scale must be a finite number >= 0");
  }
  const fs::path base_path = *options.like;
  const Model base = Model::open(base_path);
  std::vector<TensorSpec> specs;
  std::vector<TensorRef> sources;
  for (const auto& file : base.files()) {
    for (const auto& info : file.tensors()) {
      specs.push_back({info.name, info.dtype, info.shape});
      sources.push_back({&file, &info});
    }
  }
  std::vector<double> scales(specs.size(), 0.0);
  for (std::size_t t = 0; t < specs.size(); ++t) {
    if (dtype_is_mergeable_float(specs[t].dtype)) {
      scales[t] = options.delta_scale * typical_magnitude(*sources[t].file, *sources[t].info);
    }
  }

  ModelWriter writer(out_dir, specs,
                     {.shard_size_max = options.shard_size, .force = options.force});
  if (fs::is_directory(base_path)) {
    for (const auto& entry : fs::directory_iterator(base_path)) {
      const std::string name = entry.path().filename().string();
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || name.starts_with(".") || ext == ".safetensors" ||
          name == "model.safetensors.index.json" || ext == ".bin" || ext == ".pt" ||
          ext == ".pth" || ext == ".gguf") {
        continue;
      }
      writer.copy_file(entry.path(), name);
    }
  }

  run_chunks(make_chunks(writer.tensors()), options.threads, options.cancel,
             [&](const Chunk& c, unsigned char* buf) {
               const TensorSpec& spec = specs[c.tensor];
               const TensorRef& src = sources[c.tensor];
               src.file->read(*src.info, c.offset, buf, c.len);
               if (scales[c.tensor] != 0.0) {
                 const std::uint64_t elem = static_cast<std::uint64_t>(dtype_bits(spec.dtype) / 8);
                 const double scale = scales[c.tensor];
                 dispatch_float(spec.dtype, [&](auto d) {
                   // f32 arithmetic for 16- and 32-bit floats, f64 for f64.
                   using T = std::conditional_t<d() == DType::F64, double, float>;
                   const T step = static_cast<T>(scale);
                   for_each_uniform(stream_key(options.seed, spec.name), c.offset / elem,
                                    c.len / elem, [&](std::uint64_t i, float u) {
                                      const T v = static_cast<T>(load<d()>(buf, i));
                                      store<d()>(buf, i, v + step * static_cast<T>(u));
                                    });
                 });
               }
               writer.write(c.tensor, c.offset, buf, c.len);
             });
  writer.commit();
}

}  // namespace

const std::vector<std::string>& synth_families() {
  static const std::vector<std::string> families{"llama",  "mistral", "qwen2", "qwen3",
                                                 "gemma2", "phi3",    "gpt2"};
  return families;
}

SynthOptions synth_preset(std::string_view params) {
  SynthOptions o;
  o.tied = true;
  o.vocab = 128256;  // the Llama 3 tokenizer's size
  if (params == "1B") {
    o.layers = 16, o.hidden = 2048, o.intermediate = 8192, o.heads = 32, o.kv_heads = 8;
  } else if (params == "3B") {
    o.layers = 28, o.hidden = 3072, o.intermediate = 8192, o.heads = 24, o.kv_heads = 8;
  } else if (params == "8B") {
    o.layers = 32, o.hidden = 4096, o.intermediate = 14336, o.heads = 32, o.kv_heads = 8;
    o.tied = false;
  } else {
    throw Error(ErrorKind::config,
                fmt::format("unknown size preset '{}'; known presets: 1B, 3B, 8B", params));
  }
  return o;
}

void validate_synth_options(const SynthOptions& o) {
  const auto& families = synth_families();
  if (std::find(families.begin(), families.end(), o.family) == families.end()) {
    std::string known;
    for (const auto& f : families)
      known += (known.empty() ? "" : ", ") + f;
    throw Error(ErrorKind::config,
                fmt::format("unknown model family '{}'; known families: {}", o.family, known));
  }
  auto in_range = [](const char* what, int v, int lo, int hi) {
    if (v < lo || v > hi) {
      throw Error(ErrorKind::config,
                  fmt::format("{} must be in [{}, {}], got {}", what, lo, hi, v));
    }
  };
  in_range("layers", o.layers, 1, k_layers_max);
  in_range("hidden", o.hidden, 1, k_dim_max);
  in_range("intermediate", o.intermediate, 1, k_dim_max);
  in_range("heads", o.heads, 1, k_dim_max);
  in_range("kv-heads", o.kv_heads, 1, k_dim_max);
  in_range("vocab", o.vocab, 3, k_dim_max);
  if (o.hidden % o.heads != 0) {
    throw Error(ErrorKind::config,
                fmt::format("heads ({}) must divide hidden ({})", o.heads, o.hidden));
  }
  if (o.family != "gpt2" && o.heads % o.kv_heads != 0) {
    throw Error(ErrorKind::config,
                fmt::format("kv-heads ({}) must divide heads ({})", o.kv_heads, o.heads));
  }
  if (o.dtype != DType::BF16 && o.dtype != DType::F16 && o.dtype != DType::F32) {
    throw Error(ErrorKind::config, "dtype must be bf16, f16 or f32");
  }
}

std::vector<TensorSpec> synth_tensor_specs(const SynthOptions& o) {
  validate_synth_options(o);
  const std::int64_t H = o.hidden, I = o.intermediate, V = o.vocab, L = o.layers;
  const std::int64_t head_dim = H / o.heads;
  const std::int64_t q_dim = o.heads * head_dim;
  const std::int64_t kv_dim = o.kv_heads * head_dim;
  std::vector<TensorSpec> specs;
  auto add = [&](std::string name, std::vector<std::int64_t> shape) {
    specs.push_back({std::move(name), o.dtype, std::move(shape)});
  };

  if (o.family == "gpt2") {
    // GPT-2 uses Conv1D: weights are stored [in, out].
    add("transformer.wte.weight", {V, H});
    add("transformer.wpe.weight", {k_gpt2_positions, H});
    for (std::int64_t i = 0; i < L; ++i) {
      const std::string p = fmt::format("transformer.h.{}.", i);
      add(p + "ln_1.weight", {H});
      add(p + "ln_1.bias", {H});
      add(p + "attn.c_attn.weight", {H, 3 * H});
      add(p + "attn.c_attn.bias", {3 * H});
      add(p + "attn.c_proj.weight", {H, H});
      add(p + "attn.c_proj.bias", {H});
      add(p + "ln_2.weight", {H});
      add(p + "ln_2.bias", {H});
      add(p + "mlp.c_fc.weight", {H, I});
      add(p + "mlp.c_fc.bias", {I});
      add(p + "mlp.c_proj.weight", {I, H});
      add(p + "mlp.c_proj.bias", {H});
    }
    add("transformer.ln_f.weight", {H});
    add("transformer.ln_f.bias", {H});
    return specs;
  }

  add("model.embed_tokens.weight", {V, H});
  for (std::int64_t i = 0; i < L; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    if (o.family == "phi3") {
      add(p + "self_attn.qkv_proj.weight", {q_dim + 2 * kv_dim, H});
      add(p + "self_attn.o_proj.weight", {H, q_dim});
      add(p + "mlp.gate_up_proj.weight", {2 * I, H});
      add(p + "mlp.down_proj.weight", {H, I});
    } else {
      add(p + "self_attn.q_proj.weight", {q_dim, H});
      add(p + "self_attn.k_proj.weight", {kv_dim, H});
      add(p + "self_attn.v_proj.weight", {kv_dim, H});
      if (o.family == "qwen2") {
        add(p + "self_attn.q_proj.bias", {q_dim});
        add(p + "self_attn.k_proj.bias", {kv_dim});
        add(p + "self_attn.v_proj.bias", {kv_dim});
      }
      add(p + "self_attn.o_proj.weight", {H, q_dim});
      if (o.family == "qwen3") {  // per-head RMSNorm of queries and keys
        add(p + "self_attn.q_norm.weight", {q_dim / o.heads});
        add(p + "self_attn.k_norm.weight", {q_dim / o.heads});
      }
      add(p + "mlp.gate_proj.weight", {I, H});
      add(p + "mlp.up_proj.weight", {I, H});
      add(p + "mlp.down_proj.weight", {H, I});
    }
    add(p + "input_layernorm.weight", {H});
    add(p + "post_attention_layernorm.weight", {H});
    if (o.family == "gemma2") {
      add(p + "pre_feedforward_layernorm.weight", {H});
      add(p + "post_feedforward_layernorm.weight", {H});
    }
  }
  add("model.norm.weight", {H});
  if (!is_tied(o)) add("lm_head.weight", {V, H});
  return specs;
}

nlohmann::ordered_json synth_config(const SynthOptions& o) {
  validate_synth_options(o);
  const bool tied = is_tied(o);
  const std::string torch_dtype(dtype_torch_name(o.dtype));
  if (o.family == "gpt2") {
    return {{"architectures", {"GPT2LMHeadModel"}},
            {"model_type", "gpt2"},
            {"activation_function", "gelu_new"},
            {"n_embd", o.hidden},
            {"n_inner", o.intermediate},
            {"n_head", o.heads},
            {"n_layer", o.layers},
            {"n_positions", k_gpt2_positions},
            {"n_ctx", k_gpt2_positions},
            {"vocab_size", o.vocab},
            {"layer_norm_epsilon", 1e-5},
            {"initializer_range", 0.02},
            {"bos_token_id", k_bos_id},
            {"eos_token_id", k_eos_id},
            {"tie_word_embeddings", tied},
            {"torch_dtype", torch_dtype},
            {"use_cache", true}};
  }
  struct Family {
    const char* architecture;
    double rms_norm_eps;
    double rope_theta;
  };
  const Family f = o.family == "mistral"  ? Family{"MistralForCausalLM", 1e-5, 1e6}
                   : o.family == "qwen2"  ? Family{"Qwen2ForCausalLM", 1e-6, 1e6}
                   : o.family == "qwen3"  ? Family{"Qwen3ForCausalLM", 1e-6, 1e6}
                   : o.family == "gemma2" ? Family{"Gemma2ForCausalLM", 1e-6, 1e4}
                   : o.family == "phi3"   ? Family{"Phi3ForCausalLM", 1e-5, 1e4}
                                          : Family{"LlamaForCausalLM", 1e-5, 5e5};
  const int head_dim = o.hidden / o.heads;
  nlohmann::ordered_json c = {{"architectures", {f.architecture}},
                              {"model_type", o.family},
                              {"hidden_size", o.hidden},
                              {"intermediate_size", o.intermediate},
                              {"num_hidden_layers", o.layers},
                              {"num_attention_heads", o.heads},
                              {"num_key_value_heads", o.kv_heads},
                              {"head_dim", head_dim},
                              {"vocab_size", o.vocab},
                              {"rms_norm_eps", f.rms_norm_eps},
                              {"max_position_embeddings", 4096},
                              {"rope_theta", f.rope_theta},
                              {"tie_word_embeddings", tied},
                              {"torch_dtype", torch_dtype},
                              {"bos_token_id", k_bos_id},
                              {"eos_token_id", k_eos_id},
                              {"initializer_range", 0.02},
                              {"attention_dropout", 0.0},
                              {"use_cache", true}};
  if (o.family == "gemma2") {
    c["hidden_activation"] = "gelu_pytorch_tanh";
    c["query_pre_attn_scalar"] = head_dim;
    c["attn_logit_softcapping"] = 50.0;
    c["final_logit_softcapping"] = 30.0;
    c["sliding_window"] = 4096;
    c["pad_token_id"] = 0;
  } else {
    c["hidden_act"] = "silu";
  }
  if (o.family == "llama") {
    c["attention_bias"] = false;
    c["mlp_bias"] = false;
  }
  if (o.family == "mistral") c["sliding_window"] = nullptr;
  if (o.family == "qwen3") {
    c["attention_bias"] = false;
    c["use_sliding_window"] = false;
    c["sliding_window"] = nullptr;
    c["max_window_layers"] = o.layers;
  }
  if (o.family == "qwen2") {
    c["use_sliding_window"] = false;
    c["sliding_window"] = 4096;
    c["max_window_layers"] = o.layers;
  }
  return c;
}

nlohmann::json synth_tokenizer(int vocab) {
  static const char* const k_special[] = {"<unk>", "<s>", "</s>"};
  nlohmann::json added = nlohmann::json::array();
  nlohmann::json words = nlohmann::json::object();
  for (int id = 0; id < vocab; ++id) {
    std::string token;
    if (id < 3) {
      token = k_special[id];
      added.push_back({{"id", id},
                       {"content", token},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", true}});
    } else if (id < 3 + 94) {
      token = std::string(1, static_cast<char>('!' + (id - 3)));  // printable ASCII
    } else {
      token = fmt::format("w{}", id);
    }
    words[token] = id;
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "Whitespace"}}},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "WordLevel"}, {"vocab", words}, {"unk_token", "<unk>"}}}};
}

nlohmann::ordered_json synth_tokenizer_config() {
  nlohmann::ordered_json decoder = nlohmann::ordered_json::object();
  const char* const special[] = {"<unk>", "<s>", "</s>"};
  for (int id = 0; id < 3; ++id) {
    decoder[std::to_string(id)] = {{"content", special[id]}, {"lstrip", false},
                                   {"normalized", false},    {"rstrip", false},
                                   {"single_word", false},   {"special", true}};
  }
  return {{"added_tokens_decoder", decoder},
          {"bos_token", "<s>"},
          {"eos_token", "</s>"},
          {"unk_token", "<unk>"},
          {"clean_up_tokenization_spaces", false},
          {"model_max_length", 4096},
          {"tokenizer_class", "PreTrainedTokenizerFast"}};
}

nlohmann::ordered_json synth_generation_config() {
  return {{"_from_model_config", true}, {"bos_token_id", k_bos_id}, {"eos_token_id", k_eos_id}};
}

void write_synth_model(const SynthOptions& options, const fs::path& out_dir) {
  if (options.like) {
    write_like(options, out_dir);
  } else {
    write_fresh(options, out_dir);
  }
}

}  // namespace llmerge
