// cortex-make-test-model: writes a GGUF model with random weights and the real tokenizer and
// chat template of a llama.cpp vocab file, in a real model's shape.
//
// With random weights the text is noise, but tokens, templates, stops, grammars, KV reuse and
// speed are all real. Output is deterministic for a given seed. Quantized types other than
// F32/F16/Q8_0 go through llama_model_quantize(), as a real conversion would.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace {

struct Shape {
    const char * name;
    const char * arch;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    float rope_base;
    bool tied;  // output.weight shares token_embd.weight
    bool qkv_bias;
};

// The real hyper-parameters of the catalog models (from their config.json), plus tiny ones.
const Shape kShapes[] = {
    {"tiny", "qwen2", 64, 2, 4, 2, 192, 4096, 1000000.0f, true, true},
    {"tiny-llama", "llama", 64, 2, 4, 2, 192, 4096, 10000.0f, true, false},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 32768, 1000000.0f, true, true},
    {"qwen2.5-1.5b", "qwen2", 1536, 28, 12, 2, 8960, 32768, 1000000.0f, true, true},
    {"qwen2.5-7b", "qwen2", 3584, 28, 28, 4, 18944, 32768, 1000000.0f, false, true},
    {"qwen2.5-14b", "qwen2", 5120, 48, 40, 8, 13824, 32768, 1000000.0f, false, true},
    {"llama3.2-1b", "llama", 2048, 16, 32, 8, 8192, 131072, 500000.0f, true, false},
};

[[noreturn]] void die(const std::string & msg, const std::string & hint = "") {
    fprintf(stderr, "error: %s\n", msg.c_str());
    if (!hint.empty()) fprintf(stderr, "hint: %s\n", hint.c_str());
    exit(1);
}

void usage() {
    printf(
        "usage: cortex-make-test-model --vocab FILE --out FILE [options]\n"
        "  --vocab FILE      a llama.cpp models/ggml-vocab-*.gguf (tokenizer and chat template)\n"
        "  --out FILE        the model to write (written to FILE.tmp, then renamed)\n"
        "  --shape NAME      tiny (default), tiny-llama, qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b, qwen2.5-14b,\n                    llama3.2-1b\n"
        "  --type T          f32 (default), f16, q8_0, q4_k_m\n"
        "  --seed N          random seed (default 42)\n"
        "  --arch NAME       write this general.architecture instead (for unsupported-model tests)\n"
        "  --template FILE   use this Jinja chat template (e.g. llama.cpp models/templates/*.jinja)\n"
        "  --no-template     leave out the chat template\n"
        "  --threads N       threads (default: all cores)\n");
}

uint64_t splitmix64(uint64_t & state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t hash_name(const char * s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
    return h;
}

struct TensorSpec {
    std::string name;
    int64_t ne0, ne1;  // ne1 == 1 for vectors
    ggml_type type;
    float scale;       // uniform in [-scale, scale]; 0 means all ones (norm weights)
};

struct Options {
    std::string vocab, out, shape = "tiny", type = "f32", arch_override, template_file;
    uint64_t seed = 42;
    int threads = 0;
    bool template_ = true;
};

// Fills rows [r0, r1) of `t` into `dst` (the tensor's bytes), one random stream per row so that
// the result does not depend on the thread count.
void fill_rows(const TensorSpec & t, uint64_t seed, int64_t r0, int64_t r1, char * dst) {
    std::vector<float> row(t.ne0);
    const size_t row_size = ggml_row_size(t.type, t.ne0);
    for (int64_t r = r0; r < r1; ++r) {
        uint64_t state = seed ^ (static_cast<uint64_t>(r) * 0xD1B54A32D192ED03ull);
        for (int64_t i = 0; i < t.ne0; ++i) {
            if (t.scale == 0) {
                row[i] = 1.0f;
            } else {
                double u = static_cast<double>(splitmix64(state) >> 11) / 9007199254740992.0;  // [0, 1)
                row[i] = static_cast<float>((2.0 * u - 1.0) * t.scale);
            }
        }
        char * out = dst + r * row_size;
        if (t.type == GGML_TYPE_F32) memcpy(out, row.data(), row_size);
        else ggml_quantize_chunk(t.type, row.data(), out, 0, 1, t.ne0, nullptr);
    }
}

void write_all(FILE * f, const void * data, size_t n, const std::string & path) {
    if (n > 0 && fwrite(data, 1, n, f) != n) die("write to " + path + " failed: " + strerror(errno), "check free disk space");
}

void write_model(const Options & opt, const Shape & shape, ggml_type weight_type, const std::string & path) {
    gguf_init_params vp{/*no_alloc=*/true, /*ctx=*/nullptr};
    std::unique_ptr<gguf_context, void (*)(gguf_context *)> vocab(gguf_init_from_file(opt.vocab.c_str(), vp), gguf_free);
    if (!vocab) die("cannot read vocab file " + opt.vocab, "use a models/ggml-vocab-*.gguf from the llama.cpp source");

    std::unique_ptr<gguf_context, void (*)(gguf_context *)> out(gguf_init_empty(), gguf_free);
    const std::string arch = shape.arch;
    const std::string written_arch = opt.arch_override.empty() ? arch : opt.arch_override;
    gguf_set_val_str(out.get(), "general.architecture", written_arch.c_str());
    gguf_set_val_str(out.get(), "general.name", (std::string("cortex-test-") + shape.name).c_str());
    gguf_set_val_u32(out.get(), "general.file_type",
                     weight_type == GGML_TYPE_F32 ? LLAMA_FTYPE_ALL_F32 : weight_type == GGML_TYPE_F16 ? LLAMA_FTYPE_MOSTLY_F16 : LLAMA_FTYPE_MOSTLY_Q8_0);
    auto key = [&](const char * suffix) { return written_arch + "." + suffix; };
    gguf_set_val_u32(out.get(), key("context_length").c_str(), shape.n_ctx);
    gguf_set_val_u32(out.get(), key("embedding_length").c_str(), shape.n_embd);
    gguf_set_val_u32(out.get(), key("block_count").c_str(), shape.n_layer);
    gguf_set_val_u32(out.get(), key("feed_forward_length").c_str(), shape.n_ff);
    gguf_set_val_u32(out.get(), key("attention.head_count").c_str(), shape.n_head);
    gguf_set_val_u32(out.get(), key("attention.head_count_kv").c_str(), shape.n_head_kv);
    gguf_set_val_f32(out.get(), key("attention.layer_norm_rms_epsilon").c_str(), 1e-6f);
    gguf_set_val_f32(out.get(), key("rope.freq_base").c_str(), shape.rope_base);

    // The tokenizer (and its chat template) comes from the vocab file unchanged.
    int64_t n_vocab = 0;
    for (int64_t i = 0; i < gguf_get_n_kv(vocab.get()); ++i) {
        const std::string k = gguf_get_key(vocab.get(), i);
        if (k.rfind("tokenizer.", 0) != 0) continue;
        if (k == "tokenizer.chat_template" && !opt.template_) continue;
        if (k == "tokenizer.ggml.tokens") n_vocab = static_cast<int64_t>(gguf_get_arr_n(vocab.get(), i));
        const gguf_type type = gguf_get_kv_type(vocab.get(), i);
        if (type == GGUF_TYPE_ARRAY) {
            const gguf_type at = gguf_get_arr_type(vocab.get(), i);
            const size_t n = gguf_get_arr_n(vocab.get(), i);
            if (at == GGUF_TYPE_STRING) {
                std::vector<const char *> strs(n);
                for (size_t j = 0; j < n; ++j) strs[j] = gguf_get_arr_str(vocab.get(), i, j);
                gguf_set_arr_str(out.get(), k.c_str(), strs.data(), n);
            } else {
                gguf_set_arr_data(out.get(), k.c_str(), at, gguf_get_arr_data(vocab.get(), i), n);
            }
        } else if (type == GGUF_TYPE_STRING) {
            gguf_set_val_str(out.get(), k.c_str(), gguf_get_val_str(vocab.get(), i));
        } else if (type == GGUF_TYPE_UINT32) {
            gguf_set_val_u32(out.get(), k.c_str(), gguf_get_val_u32(vocab.get(), i));
        } else if (type == GGUF_TYPE_INT32) {
            gguf_set_val_i32(out.get(), k.c_str(), gguf_get_val_i32(vocab.get(), i));
        } else if (type == GGUF_TYPE_BOOL) {
            gguf_set_val_bool(out.get(), k.c_str(), gguf_get_val_bool(vocab.get(), i));
        } else if (type == GGUF_TYPE_FLOAT32) {
            gguf_set_val_f32(out.get(), k.c_str(), gguf_get_val_f32(vocab.get(), i));
        }
    }
    if (n_vocab == 0) die(opt.vocab + " has no tokenizer.ggml.tokens", "use a models/ggml-vocab-*.gguf file");
    if (!opt.template_file.empty()) {
        FILE * tf = fopen(opt.template_file.c_str(), "rb");
        if (!tf) die("cannot read template " + opt.template_file + ": " + strerror(errno));
        std::string text;
        char buf[4096];
        for (size_t n; (n = fread(buf, 1, sizeof buf, tf)) > 0;) text.append(buf, n);
        fclose(tf);
        gguf_set_val_str(out.get(), "tokenizer.chat_template", text.c_str());
    }

    const int64_t e = shape.n_embd, ff = shape.n_ff;
    const int64_t head_dim = e / shape.n_head, e_kv = head_dim * shape.n_head_kv;
    const float s_e = 1.0f / std::sqrt(static_cast<float>(e)), s_ff = 1.0f / std::sqrt(static_cast<float>(ff));
    std::vector<TensorSpec> specs;
    // Small embeddings let the layers, not the input token, decide the next token: with tied
    // output weights a large embedding makes the model repeat its input forever.
    specs.push_back({"token_embd.weight", e, n_vocab, weight_type, 0.3f});
    specs.push_back({"output_norm.weight", e, 1, GGML_TYPE_F32, 0.0f});
    if (!shape.tied) specs.push_back({"output.weight", e, n_vocab, weight_type, s_e});
    for (int l = 0; l < shape.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        specs.push_back({p + "attn_norm.weight", e, 1, GGML_TYPE_F32, 0.0f});
        specs.push_back({p + "attn_q.weight", e, e, weight_type, s_e});
        specs.push_back({p + "attn_k.weight", e, e_kv, weight_type, s_e});
        specs.push_back({p + "attn_v.weight", e, e_kv, weight_type, s_e});
        if (shape.qkv_bias) {
            specs.push_back({p + "attn_q.bias", e, 1, GGML_TYPE_F32, 0.02f});
            specs.push_back({p + "attn_k.bias", e_kv, 1, GGML_TYPE_F32, 0.02f});
            specs.push_back({p + "attn_v.bias", e_kv, 1, GGML_TYPE_F32, 0.02f});
        }
        specs.push_back({p + "attn_output.weight", e, e, weight_type, s_e});
        specs.push_back({p + "ffn_norm.weight", e, 1, GGML_TYPE_F32, 0.0f});
        specs.push_back({p + "ffn_gate.weight", e, ff, weight_type, s_e});
        specs.push_back({p + "ffn_up.weight", e, ff, weight_type, s_e});
        specs.push_back({p + "ffn_down.weight", ff, e, weight_type, s_ff});
    }

    ggml_init_params gp{specs.size() * ggml_tensor_overhead() + 1024, nullptr, /*no_alloc=*/true};
    std::unique_ptr<ggml_context, void (*)(ggml_context *)> gctx(ggml_init(gp), ggml_free);
    for (const TensorSpec & t : specs) {
        ggml_tensor * tensor = t.ne1 == 1 ? ggml_new_tensor_1d(gctx.get(), t.type, t.ne0)
                                          : ggml_new_tensor_2d(gctx.get(), t.type, t.ne0, t.ne1);
        ggml_set_name(tensor, t.name.c_str());
        gguf_add_tensor(out.get(), tensor);
    }

    // Metadata first, then each tensor's data streamed at its aligned offset: a 7B model never
    // has to fit in memory.
    FILE * f = fopen(path.c_str(), "wb");
    if (!f) die("cannot create " + path + ": " + strerror(errno));
    std::vector<char> meta(gguf_get_meta_size(out.get()));
    gguf_get_meta_data(out.get(), meta.data());
    write_all(f, meta.data(), meta.size(), path);
    const size_t alignment = gguf_get_alignment(out.get());
    const int n_threads = opt.threads > 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
    std::vector<char> data;
    for (const TensorSpec & t : specs) {
        ggml_quantize_init(t.type);
        const size_t row_size = ggml_row_size(t.type, t.ne0);
        data.assign(row_size * t.ne1, 0);
        const uint64_t seed = hash_name(t.name.c_str(), opt.seed);
        std::vector<std::thread> workers;
        const int64_t per = (t.ne1 + n_threads - 1) / n_threads;
        for (int64_t r0 = 0; r0 < t.ne1; r0 += per) {
            workers.emplace_back(fill_rows, std::cref(t), seed, r0, std::min(t.ne1, r0 + per), data.data());
        }
        for (auto & w : workers) w.join();
        write_all(f, data.data(), data.size(), path);
        const size_t pad = (alignment - data.size() % alignment) % alignment;
        static const char zeros[64] = {};
        write_all(f, zeros, pad, path);
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) die("write to " + path + " failed: " + strerror(errno));
    fclose(f);
}

}  // namespace

int main(int argc, char ** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value", "run with --help");
            return argv[++i];
        };
        if (a == "--vocab") opt.vocab = value();
        else if (a == "--out" || a == "-o") opt.out = value();
        else if (a == "--shape") opt.shape = value();
        else if (a == "--type") opt.type = value();
        else if (a == "--seed") opt.seed = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--arch") opt.arch_override = value();
        else if (a == "--threads") opt.threads = std::atoi(value().c_str());
        else if (a == "--no-template") opt.template_ = false;
        else if (a == "--template") opt.template_file = value();
        else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else die("unknown argument '" + a + "'", "run with --help");
    }
    if (opt.vocab.empty() || opt.out.empty()) die("--vocab and --out are required", "run with --help");
    const Shape * shape = nullptr;
    for (const Shape & s : kShapes) {
        if (opt.shape == s.name) shape = &s;
    }
    if (!shape) die("unknown shape '" + opt.shape + "'", "run with --help for the list");

    llama_log_set([](ggml_log_level level, const char * text, void *) {
        if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
    }, nullptr);
    llama_backend_init();

    const std::filesystem::path parent = std::filesystem::path(opt.out).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) die("cannot create " + parent.string() + ": " + ec.message());
    const std::string tmp = opt.out + ".tmp";
    if (opt.type == "f32" || opt.type == "f16" || opt.type == "q8_0") {
        ggml_type t = opt.type == "f32" ? GGML_TYPE_F32 : opt.type == "f16" ? GGML_TYPE_F16 : GGML_TYPE_Q8_0;
        write_model(opt, *shape, t, tmp);
    } else if (opt.type == "q4_k_m") {
        // Q8_0 as the source keeps a 7B base at 8 GB; the random weights lose nothing to it.
        const std::string base = opt.out + ".q8_0.tmp";
        write_model(opt, *shape, GGML_TYPE_Q8_0, base);
        llama_model_quantize_params qp = llama_model_quantize_default_params();
        qp.ftype = LLAMA_FTYPE_MOSTLY_Q4_K_M;
        qp.allow_requantize = true;
        qp.nthread = opt.threads;
        uint32_t rc = llama_model_quantize(base.c_str(), tmp.c_str(), &qp);
        unlink(base.c_str());
        if (rc != 0) die("llama_model_quantize failed for " + opt.out);
    } else {
        die("unknown type '" + opt.type + "'", "use f32, f16, q8_0 or q4_k_m");
    }
    if (rename(tmp.c_str(), opt.out.c_str()) != 0) die("cannot rename " + tmp + " to " + opt.out + ": " + strerror(errno));
    printf("%s\n", opt.out.c_str());
    return 0;
}
