// PYBIND11_MODULE(_core): argument checks, GIL release, nothing else. The Python layer
// (python/fastsoftmax/_api.py) has already converted dtypes and chosen the outputs; these checks
// keep a wrong call from reaching the kernels as a crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <algorithm>
#include <vector>

#include "block.hpp"
#include "fastsoftmax/fastsoftmax.hpp"

namespace py = pybind11;
using fastsoftmax::DType;
using fastsoftmax::Op;

namespace {

// NumPy's dtype numbers, looked up once: py::dtype::of<T>() builds a new object on every call.
int g_float32_num = 0;
int g_float64_num = 0;

DType dtype_of(const py::array& a) {
  const int num = a.dtype().num();
  if (num == g_float32_num) return DType::float32;
  if (num == g_float64_num) return DType::float64;
  throw py::type_error("fastsoftmax._core takes float32 or float64 arrays; got " +
                       std::string(py::str(a.dtype())));
}

constexpr int kMaxDims = 64;  // NumPy 2's NPY_MAXDIMS; NumPy 1 allows 32

// An operand's element strides, refusing what the kernels cannot address.
struct Operand {
  fastsoftmax::ArrayRef ref;
  std::int64_t strides[kMaxDims];
};

void check_operand(const py::array& a, const py::array& like, bool writeable, const char* name,
                   Operand& op) {
  if (dtype_of(a) != dtype_of(like)) throw py::type_error(std::string(name) + ": dtypes differ");
  if (a.ndim() != like.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), like.shape())) {
    throw py::value_error(std::string(name) + ": shapes differ");
  }
  if (writeable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  const auto itemsize = static_cast<std::int64_t>(a.itemsize());
  op.ref.data = const_cast<void*>(a.data());
  if (reinterpret_cast<std::uintptr_t>(op.ref.data) % static_cast<std::uintptr_t>(itemsize)) {
    throw py::value_error(std::string(name) + " is not aligned");
  }
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.strides(d) % itemsize) throw py::value_error(std::string(name) + " is not aligned");
    op.strides[d] = a.strides(d) / itemsize;
  }
  op.ref.strides = op.strides;
}

void run(Op op, const py::array& x, const py::object& g, const py::array& out,
         const py::object& s, int axis, int threads) {
  if (x.ndim() < 1 || x.ndim() > kMaxDims || axis < 0 || axis >= x.ndim()) {
    throw py::value_error("bad axis or number of dimensions");
  }
  std::int64_t shape[kMaxDims];
  std::copy(x.shape(), x.shape() + x.ndim(), shape);
  Operand ox, og, oo, os;
  check_operand(x, x, false, "x", ox);
  if (!g.is_none()) check_operand(g.cast<py::array>(), x, false, "grad", og);
  check_operand(out, x, true, "out", oo);
  if (!s.is_none()) check_operand(s.cast<py::array>(), x, true, "s_out", os);

  fastsoftmax::Call call;
  call.op = op;
  call.dtype = dtype_of(x);
  call.ndim = static_cast<int>(x.ndim());
  call.shape = shape;
  call.axis = axis;
  call.x = ox.ref;
  call.g = og.ref;
  call.out = oo.ref;
  call.s = os.ref;
  call.threads = threads < 1 ? 1 : threads;
  // Safe without the GIL: the kernels touch only these buffers, which the py::array arguments
  // keep alive until we return, and no Python object.
  py::gil_scoped_release release;
  fastsoftmax::compute(call);
}

py::array exp_values(const py::array& x) {
  py::array contiguous = py::array::ensure(x, py::array::c_style);
  py::array out(contiguous.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const DType dtype = dtype_of(contiguous);
  fastsoftmax::selected_exp()(dtype, contiguous.data(), out.mutable_data(), contiguous.size());
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastsoftmax's compiled kernels; use the functions of the fastsoftmax package.";
  g_float32_num = py::dtype::of<float>().num();
  g_float64_num = py::dtype::of<double>().num();
  const auto x = py::arg("x").noconvert();
  const auto out = py::arg("out").noconvert();
  m.def("softmax", [](const py::array& x, const py::array& out, int axis, int threads) {
    run(Op::softmax, x, py::none(), out, py::none(), axis, threads);
  }, x, out, py::arg("axis"), py::arg("threads"));
  m.def("log_softmax", [](const py::array& x, const py::array& out, int axis, int threads) {
    run(Op::log_softmax, x, py::none(), out, py::none(), axis, threads);
  }, x, out, py::arg("axis"), py::arg("threads"));
  m.def("softmax_backward", [](const py::array& y, const py::array& g, const py::array& out,
                               int axis, int threads) {
    run(Op::softmax_backward, y, g, out, py::none(), axis, threads);
  }, py::arg("y").noconvert(), py::arg("grad").noconvert(), out, py::arg("axis"),
     py::arg("threads"));
  m.def("log_softmax_backward", [](const py::array& y, const py::array& g, const py::array& out,
                                   int axis, int threads) {
    run(Op::log_softmax_backward, y, g, out, py::none(), axis, threads);
  }, py::arg("y").noconvert(), py::arg("grad").noconvert(), out, py::arg("axis"),
     py::arg("threads"));
  m.def("softmax_jvp", [](const py::array& x, const py::array& v, const py::array& out,
                          const py::object& s, int axis, int threads) {
    run(Op::softmax_jvp, x, v, out, s, axis, threads);
  }, x, py::arg("v").noconvert(), out, py::arg("s_out").none(true), py::arg("axis"),
     py::arg("threads"));

  m.def("simd_level", &fastsoftmax::simd_level, "The SIMD level the kernels use.");
  m.def("supported_simd_levels", &fastsoftmax::supported_simd_levels,
        "The SIMD levels this CPU runs, best first.");
  m.def("set_simd_level", &fastsoftmax::set_simd_level, py::arg("name"),
        "Use the kernels of another SIMD level from now on (for tests).");
  m.def("openmp_enabled", &fastsoftmax::openmp_enabled);
  m.def("streaming_threshold_bytes", &fastsoftmax::streaming_threshold_bytes,
        "Outputs larger than this are written past the cache.");
  m.def("_exp", &exp_values, py::arg("x"),
        "The kernels' vectorised exp, elementwise (for its accuracy tests).");
}
