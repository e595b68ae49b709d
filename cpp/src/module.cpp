// PYBIND11_MODULE(_core): argument checks, GIL release, nothing else. The Python layer
// (python/fastsoftmax/_api.py) has already converted dtypes and chosen the outputs; these checks
// keep a wrong call from reaching the kernels as a crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
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
int g_float16_num = 0;
// For the fast path: numpy.ndarray itself, and the native float dtypes (NumPy's singletons; a
// byte-swapped float32 has the same number but is another object).
PyTypeObject* g_ndarray_type = nullptr;
PyObject* g_float32_descr = nullptr;
PyObject* g_float64_descr = nullptr;
PyObject* g_float16_descr = nullptr;

DType dtype_of(const py::array& a) {
  const int num = a.dtype().num();
  if (num == g_float32_num) return DType::float32;
  if (num == g_float64_num) return DType::float64;
  if (num == g_float16_num) return DType::float16;
  throw py::type_error("fastsoftmax._core takes float16, float32 or float64 arrays; got " +
                       std::string(py::str(a.dtype())));
}

// The dtype of a call's per-row operands (fastsoftmax.hpp: float32 in a float16 call).
DType row_dtype(DType dtype) { return dtype == DType::float16 ? DType::float32 : dtype; }

constexpr int kMaxDims = 64;  // NumPy 2's NPY_MAXDIMS; NumPy 1 allows 32

// An operand's element strides, refusing what the kernels cannot address. The constructor
// leaves the strides unset (the checks fill those of ndim): zeroing them for the nine roles of
// every call took a quarter of a (1, 10) call's time in the C++ layer.
struct Operand {
  Operand() {}  // user-provided: value-initialising a ByRole<Operand> then does not zero it
  fastsoftmax::ArrayRef ref;
  std::int64_t strides[kMaxDims];
};

// Whether every element of `a` is aligned to its size, which the kernels' loads assume. As in
// NumPy's `aligned` flag, a dimension of length 1 does not count: its stride never moves.
bool check_aligned(const py::array& a) {
  const auto itemsize = static_cast<std::int64_t>(a.itemsize());
  if (reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(itemsize)) {
    return false;
  }
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) > 1 && a.strides(d) % itemsize) return false;
  }
  return true;
}

void check_operand(const py::array& a, const py::array& like, bool writeable, const char* name,
                   Operand& op) {
  if (dtype_of(a) != dtype_of(like)) throw py::type_error(std::string(name) + ": dtypes differ");
  if (a.ndim() != like.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), like.shape())) {
    throw py::value_error(std::string(name) + ": shapes differ");
  }
  if (writeable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  if (!check_aligned(a)) throw py::value_error(std::string(name) + " is not aligned");
  const auto itemsize = static_cast<std::int64_t>(a.itemsize());
  op.ref.data = const_cast<void*>(a.data());
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    op.strides[d] = a.shape(d) > 1 ? a.strides(d) / itemsize : 0;  // see check_aligned
  }
  op.ref.strides = op.strides;
}

// The mask (fastsoftmax.hpp's Role::where): NumPy bools of x's shape, strides in bytes.
void check_mask_operand(const py::array& a, const py::array& x, Operand& op) {
  if (a.dtype().num() != py::dtype::of<bool>().num()) {
    throw py::type_error("where must be a bool array; got " + std::string(py::str(a.dtype())));
  }
  if (a.ndim() != x.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), x.shape())) {
    throw py::value_error("where: shapes differ");
  }
  op.ref.data = const_cast<void*>(a.data());
  for (py::ssize_t d = 0; d < a.ndim(); ++d) op.strides[d] = a.shape(d) > 1 ? a.strides(d) : 0;
  op.ref.strides = op.strides;
}

// A per-row operand (fastsoftmax.hpp): x's shape without the axis, given to the kernels as x's
// shape with a stride of 0 along the axis.
void check_row_operand(const py::array& a, const py::array& x, int axis, const char* name,
                       bool writeable, Operand& op) {
  if (dtype_of(a) != row_dtype(dtype_of(x))) {
    throw py::type_error(std::string(name) + ": dtype is not " +
                         (dtype_of(x) == DType::float16 ? "float32 (x is float16)" : "x's"));
  }
  const bool same = a.ndim() == x.ndim() - 1 &&
                    std::equal(a.shape(), a.shape() + axis, x.shape()) &&
                    std::equal(a.shape() + axis, a.shape() + a.ndim(), x.shape() + axis + 1);
  if (!same) throw py::value_error(std::string(name) + ": shape is not x's without the axis");
  if (writeable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  if (!check_aligned(a)) throw py::value_error(std::string(name) + " is not aligned");
  const auto itemsize = static_cast<std::int64_t>(a.itemsize());
  op.ref.data = const_cast<void*>(a.data());
  for (py::ssize_t d = 0, e = 0; d < x.ndim(); ++d) {
    op.strides[d] = d == axis ? 0 : a.shape(e) > 1 ? a.strides(e) / itemsize : 0;
    e += d != axis;
  }
  op.ref.strides = op.strides;
}

// Axes [first, last] of an operand of `ndim` axes, which merge (merges_as_view), as one at
// `first`, the axes after them moved up: its stride is that of the innermost of them longer
// than 1, along which the merged axis steps first.
void merge_axes(Operand& op, const std::int64_t* shape, int ndim, int first, int last) {
  std::int64_t stride = 0;
  for (int d = last; d >= first; --d) {
    if (shape[d] > 1) {
      stride = op.strides[d];
      break;
    }
  }
  op.strides[first] = stride;
  std::copy(op.strides + last + 1, op.strides + ndim, op.strides + first + 1);
}

// What each role is called in error messages, and whether the call writes it.
struct RoleInfo {
  const char* name;
  bool written;
};
RoleInfo role_info(fastsoftmax::Role role, Op op) {
  using fastsoftmax::Role;
  switch (role) {
    case Role::x: return {"x", false};
    case Role::g: return {op == Op::logsumexp ? "b" : "grad", false};
    case Role::out: return {"out", true};
    case Role::s: return {"s_out", true};
    case Role::lse: return {"out", true};
    case Role::sign: return {"sign_out", true};
    case Role::where: return {"where", false};
    case Role::row_max: return {"row_max", op == Op::row_partials};
    case Role::row_sum: return {"row_sum", op == Op::row_partials};
  }
  return {"?", false};
}

// The operands of a call by role (None where the call has no such operand), checked against x
// (the x role, which every call has): x and g (the gradient, tangent or logsumexp's b), out and
// s (softmax_jvp's optional softmax), lse and sign (logsumexp's per-row outputs), where (the
// mask), row_max and row_sum (per-row: row_partials' outputs, the *_given ops' inputs).
//
// Axes [axis, last_axis] (last_axis -1: axis alone) are reduced together, merged into one at
// `axis`: the caller has checked that every operand's axes there merge (merges_as_view), and
// gives no per-row operand.
void run(Op op, const fastsoftmax::ByRole<py::handle>& arrays, int axis, int threads,
         int last_axis = -1) {
  for (int i = 0; i < fastsoftmax::kRoleCount; ++i) {  // no conversion: an out must be written
    const py::handle array = arrays.item[i];
    if (array && !array.is_none() && !py::isinstance<py::array>(array)) {
      throw py::type_error(std::string(role_info(static_cast<fastsoftmax::Role>(i), op).name) +
                           " must be a numpy.ndarray");
    }
  }
  const auto x = py::reinterpret_borrow<py::array>(arrays[fastsoftmax::Role::x]);
  if (x.ndim() < 1 || x.ndim() > kMaxDims || axis < 0 || axis >= x.ndim()) {
    throw py::value_error("bad axis or number of dimensions");
  }
  std::int64_t shape[kMaxDims];
  std::copy(x.shape(), x.shape() + x.ndim(), shape);
  fastsoftmax::ByRole<Operand> operands;
  fastsoftmax::Call call;
  bool writes = false;
  for (int i = 0; i < fastsoftmax::kRoleCount; ++i) {
    const auto role = static_cast<fastsoftmax::Role>(i);
    if (!arrays[role] || arrays[role].is_none()) continue;
    const auto array = py::reinterpret_borrow<py::array>(arrays[role]);
    const RoleInfo info = role_info(role, op);
    if (fastsoftmax::is_mask(role)) {
      check_mask_operand(array, x, operands[role]);
    } else if (fastsoftmax::is_per_row(role)) {
      check_row_operand(array, x, axis, info.name, info.written, operands[role]);
    } else {
      check_operand(array, x, info.written, info.name, operands[role]);
    }
    // From the fields, not as a copy of ref just stored: a 16-byte load of the two 8-byte
    // stores stalls (no store forwarding), a fifth of this function's time on a (1, 10) call.
    call.operands[role] = {operands[role].ref.data, operands[role].strides};
    writes |= info.written;
  }
  if (!writes) throw py::value_error("no output given");
  call.ndim = static_cast<int>(x.ndim());
  if (last_axis > axis) {
    for (int i = 0; i < fastsoftmax::kRoleCount; ++i) {
      if (call.operands.item[i].data) merge_axes(operands.item[i], shape, call.ndim, axis, last_axis);
    }
    shape[axis] = std::accumulate(shape + axis, shape + last_axis + 1, std::int64_t{1},
                                  std::multiplies<>());
    std::copy(shape + last_axis + 1, shape + call.ndim, shape + axis + 1);
    call.ndim -= last_axis - axis;
  }
  call.op = op;
  call.dtype = dtype_of(x);
  call.shape = shape;
  call.axis = axis;
  call.threads = threads < 1 ? 1 : threads;
  // Safe without the GIL: the kernels touch only these buffers, which the py::array arguments
  // keep alive until we return, and no Python object.
  py::gil_scoped_release release;
  fastsoftmax::compute(call);
}

// The operands of a binding's arguments, by role.
template <class... Pairs>
fastsoftmax::ByRole<py::handle> roles(Pairs... pairs) {
  fastsoftmax::ByRole<py::handle> arrays;
  ((arrays[pairs.first] = pairs.second), ...);
  return arrays;
}

// [Note: the fast path]
// For a small array the Python layer's checks cost several times the kernel (about 1.5 us of a
// 2 us call), so the common case skips them: plain ndarrays of a native float dtype,
// aligned, non-empty, equal shapes and dtypes, an int axis in range or a run of adjacent axes
// that merge into one in every operand (axis_run; axis=(1, 2) of a C-contiguous (64, 32, 32)
// array costs what the (64, 1024) call does), and either no `out` (x C-contiguous: the result
// is too) or an `out` that is writeable, surely free of internal overlap and shares no memory
// with the inputs unless it is exactly one of them. Such a call is computed here and its result
// returned; any other call returns None without looking further, and the Python layer takes it,
// converting, using a scratch array or raising its own errors. The conditions are exactly those
// under which the Python layer would pass its arguments through unchanged.
bool plain_float_array(py::handle h) {
  if (Py_TYPE(h.ptr()) != g_ndarray_type) return false;
  const auto a = py::reinterpret_borrow<py::array>(h);
  const PyObject* descr = a.dtype().ptr();
  const bool native =
      descr == g_float32_descr || descr == g_float64_descr || descr == g_float16_descr;
  return native && a.size() > 0 && check_aligned(a);
}

// [lowest, highest) byte address an array touches.
std::pair<std::uintptr_t, std::uintptr_t> extent(const py::array& a) {
  auto low = reinterpret_cast<std::uintptr_t>(a.data());
  auto high = low + static_cast<std::uintptr_t>(a.itemsize());
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    const auto span = static_cast<std::intptr_t>(a.strides(d) * (a.shape(d) - 1));
    if (span < 0) low -= static_cast<std::uintptr_t>(-span);
    else high += static_cast<std::uintptr_t>(span);
  }
  return {low, high};
}

// Whether no two elements of `a` share memory, by a test that is sure when it says so: each
// dimension, by increasing stride, steps past all the smaller ones span. An array it cannot
// clear (interleaved strides, or an as_strided view onto itself) is left to the Python layer,
// which checks exactly.
bool surely_no_internal_overlap(const py::array& a) {
  std::pair<std::int64_t, std::int64_t> dims[kMaxDims];  // (|stride| in bytes, length)
  int count = 0;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) > 1) dims[count++] = {std::abs(std::int64_t(a.strides(d))), a.shape(d)};
  }
  std::sort(dims, dims + count);
  std::int64_t span = a.itemsize();  // bytes one step of the next dimension must clear
  for (int i = 0; i < count; ++i) {
    if (dims[i].first < span) return false;
    span += dims[i].first * (dims[i].second - 1);
  }
  return true;
}

// Whether `out` may be written while `in` is read: no shared memory, or exactly the same view.
bool separate_or_same(const py::array& out, const py::array& in) {
  if (out.data() == in.data() && std::equal(out.strides(), out.strides() + out.ndim(), in.strides())) {
    return true;
  }
  const auto [out_low, out_high] = extent(out);
  const auto [in_low, in_high] = extent(in);
  return out_high <= in_low || in_high <= out_low;
}

// An int axis in [-ndim, ndim) as a non-negative one; false for anything else.
bool axis_in_range(PyObject* obj, int ndim, int& axis) {
  if (!PyLong_CheckExact(obj)) return false;
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
  if (overflow || value < -ndim || value >= ndim) return false;
  axis = static_cast<int>(value < 0 ? value + ndim : value);
  return true;
}

// The reduced axes as one run [first, last] of adjacent axes: an int axis, or a tuple of them
// (None: all) that is such a run, in any order. Anything else (the empty tuple, repeated axes,
// axes with gaps, items that are not ints) is the Python layer's, which also raises its errors.
bool axis_run(py::handle axis_obj, int ndim, int& first, int& last) {
  PyObject* obj = axis_obj.ptr();
  if (PyLong_CheckExact(obj)) {
    if (!axis_in_range(obj, ndim, first)) return false;
    last = first;
    return true;
  }
  if (ndim == 0) return false;  // a 0-d x: its result is a NumPy scalar, which _api makes
  if (obj == Py_None) {
    first = 0;
    last = ndim - 1;
    return true;
  }
  if (!PyTuple_CheckExact(obj) || PyTuple_GET_SIZE(obj) == 0) return false;
  std::uint64_t seen = 0;  // one bit per axis (ndim <= kMaxDims = 64)
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(obj); ++i) {
    int axis = 0;
    if (!axis_in_range(PyTuple_GET_ITEM(obj, i), ndim, axis)) return false;
    const std::uint64_t bit = std::uint64_t{1} << axis;
    if (seen & bit) return false;
    seen |= bit;
  }
  first = __builtin_ctzll(seen);
  last = 63 - __builtin_clzll(seen);
  return last - first + 1 == PyTuple_GET_SIZE(obj);  // no gaps
}

// Whether axes [first, last] of `a` merge into one as a view, in their order: each one's stride
// spans the next one's (axes of length 1 aside), as a C-ordered reshape needs. The order is
// python/fastsoftmax/_axes.py's (decreasing stride) wherever they merge, so the result is the
// same bits.
bool merges_as_view(const py::array& a, int first, int last) {
  int inner = -1;  // the last axis longer than 1 seen
  for (int d = first; d <= last; ++d) {
    if (a.shape(d) == 1) continue;
    if (inner >= 0 && a.strides(inner) != a.strides(d) * a.shape(d)) return false;
    inner = d;
  }
  return true;
}

py::object try_run(Op op, bool binary, py::handle x_obj, py::handle g_obj, py::handle out_obj,
                   py::handle axis_obj, int threads) {
  if (!plain_float_array(x_obj)) return py::none();
  const auto x = py::reinterpret_borrow<py::array>(x_obj);
  int axis = 0, last_axis = 0;
  if (!axis_run(axis_obj, static_cast<int>(x.ndim()), axis, last_axis)) return py::none();
  const auto same = [&](const py::array& a) {
    return a.dtype().ptr() == x.dtype().ptr() && a.ndim() == x.ndim() &&
           std::equal(a.shape(), a.shape() + a.ndim(), x.shape());
  };
  if (binary && !(plain_float_array(g_obj) && same(py::reinterpret_borrow<py::array>(g_obj)))) {
    return py::none();
  }
  py::object out;
  if (out_obj.is_none()) {
    if (!(x.flags() & py::array::c_style)) return py::none();
    out = py::array(x.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  } else {
    if (Py_TYPE(out_obj.ptr()) != g_ndarray_type) return py::none();
    const auto o = py::reinterpret_borrow<py::array>(out_obj);
    if (!same(o) || !o.writeable() || !check_aligned(o) || !surely_no_internal_overlap(o) ||
        !separate_or_same(o, x) ||
        (binary && !separate_or_same(o, py::reinterpret_borrow<py::array>(g_obj)))) {
      return py::none();
    }
    out = o;
  }
  if (last_axis > axis) {
    for (const py::handle a : {x_obj, g_obj, py::handle(out)}) {
      if (!a.is_none() && !merges_as_view(py::reinterpret_borrow<py::array>(a), axis, last_axis)) {
        return py::none();
      }
    }
  }
  using fastsoftmax::Role;
  run(op, roles(std::pair{Role::x, x_obj}, std::pair{Role::g, g_obj}, std::pair{Role::out, out}),
      axis, threads, last_axis);
  return out;
}

py::array exp_values(const py::array& x) {
  py::array contiguous = py::array::ensure(x, py::array::c_style);
  py::array out(contiguous.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const DType dtype = dtype_of(contiguous);
  if (dtype == DType::float16) throw py::type_error("_exp takes float32 or float64 arrays");
  fastsoftmax::selected_exp()(dtype, contiguous.data(), out.mutable_data(), contiguous.size());
  return out;
}

// out = x in out's dtype, float32 to float16 or back (cpp/src/half.cpp): C-contiguous, aligned
// arrays of one size, in native byte order.
void convert_half(const py::array& x, py::array& out) {
  const py::dtype single = py::dtype::of<float>(), half("float16");
  const bool to_half = x.dtype().equal(single) && out.dtype().equal(half);
  const bool to_single = x.dtype().equal(half) && out.dtype().equal(single);
  if (!(to_half || to_single) || !(x.flags() & py::array::c_style) ||
      !(out.flags() & py::array::c_style) || !check_aligned(x) || !check_aligned(out) ||
      x.size() != out.size() || !out.writeable()) {
    throw py::value_error(
        "_convert_half takes C-contiguous, aligned float32 and float16 arrays of one size");
  }
  const void* in = x.data();
  void* result = out.mutable_data();
  const auto n = x.size();
  py::gil_scoped_release release;
  if (to_half) {
    fastsoftmax::float_to_half(static_cast<const float*>(in), static_cast<std::uint16_t*>(result),
                               n);
  } else {
    fastsoftmax::half_to_float(static_cast<const std::uint16_t*>(in), static_cast<float*>(result),
                               n);
  }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastsoftmax's compiled kernels; use the functions of the fastsoftmax package.";
  g_float32_num = py::dtype::of<float>().num();
  g_float64_num = py::dtype::of<double>().num();
  g_float16_num = py::dtype("float16").num();
  // Kept for the life of the process, as the module is.
  g_float32_descr = py::dtype::of<float>().release().ptr();
  g_float64_descr = py::dtype::of<double>().release().ptr();
  g_float16_descr = py::dtype("float16").release().ptr();
  g_ndarray_type = Py_TYPE(py::array_t<float>(0).ptr());
  using fastsoftmax::Role;
  using Arg = std::pair<Role, py::handle>;
  const auto x = py::arg("x").noconvert();
  const auto where = py::arg("where").none(true);
  const auto out = py::arg("out").noconvert();
  const auto axis = py::arg("axis");
  const auto threads = py::arg("threads");
  for (const auto& [name, op] : {std::pair{"softmax", Op::softmax},
                                 std::pair{"log_softmax", Op::log_softmax}}) {
    m.def(name, [op = op](py::handle x, py::handle where, py::handle out, int axis, int threads) {
      run(op, roles(Arg{Role::x, x}, Arg{Role::where, where}, Arg{Role::out, out}), axis,
          threads);
    }, x, where, out, axis, threads);
  }
  for (const auto& [name, op] : {std::pair{"softmax_backward", Op::softmax_backward},
                                 std::pair{"log_softmax_backward", Op::log_softmax_backward}}) {
    m.def(name, [op = op](py::handle y, py::handle g, py::handle where, py::handle out,
                          int axis, int threads) {
      run(op, roles(Arg{Role::x, y}, Arg{Role::g, g}, Arg{Role::where, where},
                    Arg{Role::out, out}), axis, threads);
    }, py::arg("y").noconvert(), py::arg("grad").noconvert(), where, out, axis, threads);
  }
  m.def("softmax_jvp", [](py::handle x, py::handle v, py::handle where, py::handle out,
                          py::handle s, int axis, int threads) {
    run(Op::softmax_jvp, roles(Arg{Role::x, x}, Arg{Role::g, v}, Arg{Role::where, where},
                               Arg{Role::out, out}, Arg{Role::s, s}), axis, threads);
  }, x, py::arg("v").noconvert(), where, out, py::arg("s_out").none(true), axis, threads);
  m.def("logsumexp", [](py::handle x, py::handle b, py::handle where, py::handle out,
                        py::handle sign_out, int axis, int threads) {
    run(Op::logsumexp, roles(Arg{Role::x, x}, Arg{Role::g, b}, Arg{Role::where, where},
                             Arg{Role::lse, out}, Arg{Role::sign, sign_out}), axis, threads);
  }, x, py::arg("b").none(true), where, out, py::arg("sign_out").none(true), axis, threads);
  m.def("row_partials", [](py::handle x, py::handle where, py::handle max_out,
                           py::handle sum_out, int axis, int threads) {
    run(Op::row_partials, roles(Arg{Role::x, x}, Arg{Role::where, where},
                                Arg{Role::row_max, max_out}, Arg{Role::row_sum, sum_out}),
        axis, threads);
  }, x, where, py::arg("max_out").noconvert(), py::arg("sum_out").noconvert(), axis, threads);
  for (const auto& [name, op] : {std::pair{"softmax_given", Op::softmax_given},
                                 std::pair{"log_softmax_given", Op::log_softmax_given}}) {
    m.def(name, [op = op](py::handle x, py::handle where, py::handle row_max,
                          py::handle row_sum, py::handle out, int axis, int threads) {
      run(op, roles(Arg{Role::x, x}, Arg{Role::where, where}, Arg{Role::row_max, row_max},
                    Arg{Role::row_sum, row_sum}, Arg{Role::out, out}), axis, threads);
    }, x, where, py::arg("row_max").noconvert(), py::arg("row_sum").noconvert(), out, axis,
       threads);
  }

  // The fast path (see its Note): the result, or None where the Python layer must take the call.
  const auto fast = [&m](const char* name, Op op, bool binary) {
    if (binary) {
      m.def(name, [op](py::handle x, py::handle g, py::handle out, py::handle axis, int threads) {
        return try_run(op, true, x, g, out, axis, threads);  // g may be any object, even None
      });
    } else {
      m.def(name, [op](py::handle x, py::handle out, py::handle axis, int threads) {
        return try_run(op, false, x, py::none(), out, axis, threads);
      });
    }
  };
  fast("try_softmax", Op::softmax, false);
  fast("try_log_softmax", Op::log_softmax, false);
  fast("try_softmax_backward", Op::softmax_backward, true);
  fast("try_log_softmax_backward", Op::log_softmax_backward, true);
  fast("try_softmax_jvp", Op::softmax_jvp, true);  // without its softmax output (s absent)

  m.def("simd_level", &fastsoftmax::simd_level, "The SIMD level the kernels use.");
  m.def("supported_simd_levels", &fastsoftmax::supported_simd_levels,
        "The SIMD levels this CPU runs, best first.");
  m.def("set_simd_level", &fastsoftmax::set_simd_level, py::arg("name"),
        "Use the kernels of another SIMD level from now on (for tests).");
  m.def("openmp_enabled", &fastsoftmax::openmp_enabled);
  m.def("threads_lost_to_fork", &fastsoftmax::threads_lost_to_fork,
        "Whether this process was forked after a parallel region ran (see dispatch.cpp).");
  m.def("streaming_threshold_bytes", &fastsoftmax::streaming_threshold_bytes,
        "Outputs larger than this are written past the cache.");
  m.def("_set_streaming_threshold_bytes", &fastsoftmax::set_streaming_threshold_bytes,
        py::arg("bytes"), "Set by fastsoftmax._backends at import (see _cache_size.py).");
  m.def("_convert_half", &convert_half, py::arg("x"), py::arg("out"),
        "out = x, float32 rounded to float16 (to nearest even) or float16 to float32: NumPy's "
        "casts, faster.");
  m.def("_exp", &exp_values, py::arg("x"),
        "The kernels' vectorised exp, elementwise (for its accuracy tests).");
}
