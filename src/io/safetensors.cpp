// safetensors: the validating mmap reader, the atomic writer and sharded HF checkpoint folders.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/hf_config.h"
#include "util/atomic_file.h"
#include "util/error.h"

// safetensors is little-endian on disk; c3 reads it in place, so the host must be too.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "c3 needs a little-endian host");

namespace c3::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Real headers are kilobytes; like the Rust `safetensors` crate we refuse a claim above ~100 MB
// as corrupt or hostile before reading it.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

constexpr const char* kHint =
    "The file is corrupt or not a safetensors file; re-download or re-export it.";

struct DTypeRow {
  DType d;
  const char* name;
  size_t size;
  at::ScalarType scalar;
};

constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8, at::kDouble}, {DType::F32, "F32", 4, at::kFloat},
    {DType::F16, "F16", 2, at::kHalf},   {DType::BF16, "BF16", 2, at::kBFloat16},
    {DType::I64, "I64", 8, at::kLong},   {DType::I32, "I32", 4, at::kInt},
    {DType::I16, "I16", 2, at::kShort},  {DType::I8, "I8", 1, at::kChar},
    {DType::U8, "U8", 1, at::kByte},     {DType::BOOL, "BOOL", 1, at::kBool},
};

const DTypeRow& row(DType d) { return kDTypes[static_cast<int>(d)]; }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses the header JSON, failing on any key that repeats inside one object: plain nlohmann keeps
// the last duplicate silently, which would hide a second tensor of the same name.
json parse_header(const std::string& path, const char* text, size_t n) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  size_t duplicate_depth = 0;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (ev == json::parse_event_t::key && duplicate.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second) {
        duplicate = k;
        duplicate_depth = keys.size();
      }
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + n, cb);
  } catch (const json::exception& e) {
    fail("safetensors file '{}': the JSON header is malformed ({}). {}", path,
         clip_json_error(e.what()), kHint);
  }
  if (!duplicate.empty()) {
    if (duplicate_depth == 1)
      fail("safetensors file '{}': tensor '{}' appears twice in the header (duplicate names). {}",
           path, duplicate, kHint);
    fail("safetensors file '{}': key '{}' appears twice inside one header entry. {}", path,
         duplicate, kHint);
  }
  if (!header.is_object())
    fail("safetensors file '{}': the JSON header is a {}, not an object. {}", path,
         header.type_name(), kHint);
  return header;
}

// Reads one header entry, checking types, shape and that dtype x shape equals the byte range.
TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e) {
  auto bad = [&](const std::string& what) {
    fail("safetensors file '{}': tensor '{}': {}. {}", path, name, what, kHint);
  };
  if (!e.is_object()) bad(fmt::format("the entry is a {}, not an object", e.type_name()));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) bad(fmt::format("the entry lacks '{}'", key));
  TensorInfo t;
  t.name = name;
  const json& dt = e["dtype"];
  if (!dt.is_string()) bad(fmt::format("'dtype' is a {}, not a string", dt.type_name()));
  t.dtype = dtype_from_name(dt.get<std::string>(),
                            fmt::format("safetensors file '{}': tensor '{}'", path, name));

  const json& sh = e["shape"];
  if (!sh.is_array()) bad(fmt::format("'shape' is a {}, not an array", sh.type_name()));
  // numel is bounded by the file size below, so an overflow here already means a bad file; we
  // check it explicitly so a shape like [2^40, 2^40] can never wrap around to a small number.
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : sh) {
    if (d.is_number_integer() && !d.is_number_unsigned())
      bad(fmt::format("shape {} has a negative dimension", sh.dump()));
    if (!d.is_number_unsigned())
      bad(fmt::format("shape {} has a non-integer dimension", sh.dump()));
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) bad(fmt::format("shape {} is too large", sh.dump()));
    t.shape.push_back(static_cast<int64_t>(v));
    overflow = overflow || __builtin_mul_overflow(numel, v, &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, dtype_size(t.dtype), &nbytes);
  if (overflow || numel > static_cast<uint64_t>(INT64_MAX))
    bad(fmt::format("shape {} has more elements than any file can hold", sh.dump()));

  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    bad(fmt::format("'data_offsets' must be two non-negative integers [begin, end], got {}",
                    off.dump()));
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  if (t.end < t.begin)
    bad(fmt::format("data_offsets [{}, {}] end before they begin", t.begin, t.end));
  if (t.end - t.begin != nbytes)
    bad(fmt::format("dtype {} x shape {} needs {} bytes but data_offsets [{}, {}] hold {} bytes",
                    dtype_name(t.dtype), shape_str(t.shape), nbytes, t.begin, t.end,
                    t.end - t.begin));
  return t;
}

}  // namespace

const char* dtype_name(DType d) { return row(d).name; }
size_t dtype_size(DType d) { return row(d).size; }
at::ScalarType to_scalar_type(DType d) { return row(d).scalar; }

DType dtype_from_name(const std::string& s, const std::string& where) {
  for (const DTypeRow& r : kDTypes)
    if (s == r.name) return r.d;
  fail(
      "{}: unsupported dtype '{}'. c3 reads F64, F32, F16, BF16, I64, I32, I16, I8, U8 and BOOL; "
      "convert the tensor to one of them.",
      where, s);
}

DType from_scalar_type(at::ScalarType t) {
  for (const DTypeRow& r : kDTypes)
    if (t == r.scalar) return r.d;
  fail(
      "tensor dtype {} cannot be stored: c3 writes F64, F32, F16, BF16, I64, I32, I16, I8, U8 and "
      "BOOL; convert it first (e.g. .to(at::kFloat)).",
      c10::toString(t));
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reader

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail("cannot open safetensors file '{}': {}. Check the path.", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("safetensors file '{}' is not a regular file. Pass the path of a .safetensors file.",
         path);
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail("safetensors file '{}' is truncated: {} bytes, fewer than the 8-byte header length. {}",
         path, file_size, kHint);
  }
  // MAP_PRIVATE + PROT_WRITE is copy-on-write: tensors handed out stay safe to modify in place
  // (the file never changes), and untouched pages are shared with the page cache.
  void* base = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (base == MAP_FAILED)
    fail("cannot map safetensors file '{}': {}", path, std::strerror(map_errno));
  std::shared_ptr<void> mapping(base, [file_size](void* p) { ::munmap(p, file_size); });
  return parse(path, static_cast<const uint8_t*>(base), file_size, std::move(mapping));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::string bytes,
                                                             const std::string& name) {
  if (bytes.size() < 8)
    fail("safetensors file '{}' is truncated: {} bytes, fewer than the 8-byte header length. {}",
         name, bytes.size(), kHint);
  auto owned = std::make_shared<std::string>(std::move(bytes));
  const auto* base = reinterpret_cast<const uint8_t*>(owned->data());
  const uint64_t size = owned->size();
  return parse(name, base, size, std::move(owned));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(const std::string& path,
                                                        const uint8_t* bytes, uint64_t file_size,
                                                        std::shared_ptr<void> mapping) {
  uint64_t n = 0;
  std::memcpy(&n, bytes, 8);
  if (n > kMaxHeaderBytes)
    fail("safetensors file '{}': the header length {} is not sane (limit {} bytes). {}", path, n,
         kMaxHeaderBytes, kHint);
  if (8 + n > file_size)
    fail(
        "safetensors file '{}' is truncated: the header length {} reaches beyond the end of the "
        "file ({} bytes). {}",
        path, n, file_size, kHint);

  json header = parse_header(path, reinterpret_cast<const char*>(bytes + 8), n);

  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->data_ = bytes + 8 + n;
  f->data_size_ = file_size - 8 - n;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail("safetensors file '{}': '__metadata__' is a {}, not an object of strings. {}", path,
             entry.type_name(), kHint);
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string())
          fail(
              "safetensors file '{}': metadata '{}' is a {}, but metadata values must be "
              "strings. {}",
              path, k, v.type_name(), kHint);
        f->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    TensorInfo t = parse_entry(path, name, entry);
    if (t.end > f->data_size_)
      fail(
          "safetensors file '{}': tensor '{}': data_offsets [{}, {}] reach beyond the data "
          "section ({} bytes); the file is truncated. {}",
          path, name, t.begin, t.end, f->data_size_, kHint);
    f->tensors_.push_back(std::move(t));
  }

  // Sorted by range, every tensor must start exactly where the previous one ended: this one
  // check rules out both overlaps and gaps.
  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : f->tensors_) {
    if (t.begin < pos)
      fail(
          "safetensors file '{}': tensor '{}' (bytes [{}, {})) overlaps tensor '{}' (bytes [{}, "
          "{})). {}",
          path, t.name, t.begin, t.end, prev->name, prev->begin, prev->end, kHint);
    if (t.begin > pos)
      fail(
          "safetensors file '{}': data bytes [{}, {}) before tensor '{}' belong to no tensor; "
          "the ranges must cover the data section exactly. {}",
          path, pos, t.begin, t.name, kHint);
    pos = t.end;
    prev = &t;
  }
  if (pos != f->data_size_)
    fail(
        "safetensors file '{}': data bytes [{}, {}) at the end belong to no tensor; the ranges "
        "must cover the data section exactly. {}",
        path, pos, f->data_size_, kHint);

  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  f->mapping_ = std::move(mapping);
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::pair<const uint8_t*, size_t> SafetensorsFile::bytes(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t)
    fail(
        "safetensors file '{}' has no tensor '{}' ({} tensors; `c3 safetensors inspect {}` lists "
        "them).",
        path_, name, tensors_.size(), path_);
  return {data_ + t->begin, t->end - t->begin};
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto [ptr, n] = bytes(name);
  const TensorInfo& t = *find(name);
  const auto options = at::TensorOptions().dtype(to_scalar_type(t.dtype)).device(at::kCPU);
  if (n == 0) return at::empty(t.shape, options);
  if (reinterpret_cast<uintptr_t>(ptr) % dtype_size(t.dtype) == 0) {
    // Zero-copy: the deleter owns a reference to the mapping, so the tensor may outlive `this`.
    std::shared_ptr<void> keep = mapping_;
    return at::from_blob(
        const_cast<uint8_t*>(ptr), t.shape, [keep](void*) mutable { keep.reset(); }, options);
  }
  // A header whose length is not a multiple of the element size misaligns the data: copy.
  at::Tensor out = at::empty(t.shape, options);
  std::memcpy(out.data_ptr(), ptr, n);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Build and check the whole header before touching the disk; data is copied tensor by tensor
  // while writing, so peak memory is one tensor, not the model.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || name.empty())
      fail("cannot write '{}': '{}' is not a valid tensor name.", path, name);
    if (!seen.insert(name).second)
      fail("cannot write '{}': tensor '{}' is given twice; names must be unique.", path, name);
    if (!t.defined()) fail("cannot write '{}': tensor '{}' is undefined.", path, name);
    DType d;
    try {
      d = from_scalar_type(t.scalar_type());
    } catch (const Error& e) {
      fail("cannot write '{}': tensor '{}': {}", path, name, e.what());
    }
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(d);
    header[name] = {{"dtype", dtype_name(d)},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("cannot write '{}': a tensor name or metadata string is not valid UTF-8 ({}).", path,
         e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data then starts 8-byte aligned
  const uint64_t n = text.size();

  write_file_atomic(path, [&](std::ostream& out) {
    char len[8];
    std::memcpy(len, &n, 8);
    out.write(len, 8);
    out.write(text.data(), text.size());
    for (const auto& [name, t] : tensors) {
      at::Tensor c = t.to(at::kCPU).contiguous();
      out.write(static_cast<const char*>(c.data_ptr()), c.nbytes());
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Checkpoint folders

Checkpoint Checkpoint::open(const std::string& dir) {
  if (!fs::is_directory(dir))
    fail(
        "checkpoint folder '{}' does not exist (or is not a folder). Pass an HF checkpoint "
        "folder holding model.safetensors.",
        dir);
  Checkpoint c;
  c.dir_ = dir;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  // Same preference as transformers: the single file wins when both exist.
  if (fs::exists(single)) {
    auto f = SafetensorsFile::open(single.string());
    for (const TensorInfo& t : f->tensors()) c.where_[t.name] = f;
    return c;
  }
  if (!fs::exists(index))
    fail(
        "checkpoint folder '{}' has neither model.safetensors nor model.safetensors.index.json. "
        "Point at an HF checkpoint folder (save it with safetensors).",
        dir);

  JsonFile idx = JsonFile::load(index.string());
  const json& j = idx.json();
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    fail(
        "checkpoint index '{}' lacks the object 'weight_map' (tensor -> shard file). Re-save "
        "the checkpoint.",
        index.string());
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string())
      fail("checkpoint index '{}': tensor '{}' maps to a {}, not a shard file name.",
           index.string(), name, shard.type_name());
    const std::string file = shard.get<std::string>();
    auto it = shards.find(file);
    if (it == shards.end()) {
      const fs::path p = fs::path(dir) / file;
      if (!fs::exists(p))
        fail(
            "checkpoint folder '{}' lacks shard '{}', which its index '{}' names for tensor "
            "'{}'. Copy the missing shard into the folder.",
            dir, file, index.filename().string(), name);
      it = shards.emplace(file, SafetensorsFile::open(p.string())).first;
    }
    if (!it->second->contains(name))
      fail(
          "checkpoint folder '{}': the index puts tensor '{}' in shard '{}', but that shard "
          "has no such tensor. The index and shards do not match; re-save the checkpoint.",
          dir, name, file);
    c.where_[name] = it->second;
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

bool Checkpoint::contains(const std::string& name) const { return where_.count(name) > 0; }

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    fail("checkpoint folder '{}' has no tensor '{}' ({} tensors). Is it the right checkpoint?",
         dir_, name, where_.size());
  return *it->second->find(name);
}

at::Tensor Checkpoint::tensor(const std::string& name) const {
  info(name);  // throws naming the folder when absent
  return where_.at(name)->tensor(name);
}

std::pair<const uint8_t*, size_t> Checkpoint::bytes(const std::string& name) const {
  info(name);
  return where_.at(name)->bytes(name);
}

std::string Checkpoint::file_of(const std::string& name) const {
  info(name);
  return where_.at(name)->path();
}

}  // namespace c3::io
