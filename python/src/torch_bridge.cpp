// at::Tensor <-> torch.Tensor through DLPack capsules.
#include "torch_bridge.h"

#include <ATen/DLConvertor.h>

#include "arguments.h"

namespace c3::python {

namespace {

// The DLPack protocol's capsule names: a consumer renames "dltensor" to "used_dltensor" when it
// takes the tensor over, and from then on it frees it.
constexpr const char* kCapsule = "dltensor";
constexpr const char* kUsedCapsule = "used_dltensor";

void free_unused_capsule(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, kCapsule)) return;  // taken over (or not ours): not ours to free
  auto* dl = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsule));
  if (dl && dl->deleter) dl->deleter(dl);
}

}  // namespace

py::object to_torch(const at::Tensor& t) {
  DLManagedTensor* dl = at::toDLPack(t);  // holds a reference to t's storage until deleted
  PyObject* capsule = PyCapsule_New(dl, kCapsule, free_unused_capsule);
  if (!capsule) {
    dl->deleter(dl);
    throw py::error_already_set();
  }
  return py::module_::import("torch.utils.dlpack")
      .attr("from_dlpack")(py::reinterpret_steal<py::object>(capsule));
}

at::Tensor from_torch(const py::handle& obj, const std::string& name) {
  const py::module_ torch = py::module_::import("torch");
  if (!py::isinstance(obj, torch.attr("Tensor")))
    throw py::type_error(name + " must be a torch.Tensor, got " + type_name(obj));
  const py::object capsule =
      py::module_::import("torch.utils.dlpack").attr("to_dlpack")(obj.attr("detach")());
  auto* dl = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), kCapsule));
  if (!dl) throw py::error_already_set();
  at::Tensor t = at::fromDLPack(dl);  // t now owns dl and frees it with its storage
  PyCapsule_SetName(capsule.ptr(), kUsedCapsule);
  return t;
}

}  // namespace c3::python
