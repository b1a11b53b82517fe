/* Round float32 values to the nearest fp16 value (ties to even), in place, in one pass.
 *
 * The executor rounds nearly every op's result to fp16 as Core ML computes it (graph.py,
 * round_fp16_). In torch that is two copies through an fp16 buffer plus its allocation:
 * ~3.5 us on a small tensor, most of it dispatch, ~130 times per MobileNetV3-small image.
 * This is one call on the tensor's memory: F16C / AVX-512 conversions where the CPU has
 * them (the instructions torch's own float->half uses), portable bit arithmetic otherwise:
 * exact, but ~20x slower than F16C and slower than torch's copies, so graphs do not use it
 * (graph.in_place_rounding); it keeps the module building, and tested, everywhere.
 * Same values as x.half().float() for every input (tests/executor/test_fp16round.py).
 *
 * It also computes MIL's hard-swish as the converter writes it - sigmoid_hard(x, alpha, beta)
 * rounded to fp16, times x, rounded - in the same one pass (elementwise.py, hard_swish_fp16_):
 * the values of torch's add(beta, x, alpha) (a fused multiply-add), clamp_(0, 1) (NaN kept),
 * mul and the two roundings, computed one after the other on each value.
 *
 * round_inplace(address, count): count float32 values at address (dense memory, any order).
 * hard_swish_inplace(address, count, alpha, beta): the same memory, hard-swish applied.
 * isa(): which path they take here; paths(): the paths this CPU can run; use(name): take
 * that path from now on (the tests run each one).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* Portable: IEEE binary32 -> nearest binary16 value (round half to even), back in binary32.
 * Branch-free, so that compilers vectorise the loops (SSE2 / NEON) without F16C. */
static inline float round_one_portable(float value) {
    uint32_t bits, subnormal;
    memcpy(&bits, &value, 4);
    uint32_t sign = bits & 0x80000000u, magnitude = bits & 0x7fffffffu;
    /* fp16 normal range: keep 10 mantissa bits, ties to even (a carry moves the exponent). */
    uint32_t normal = (magnitude + 0x0fffu + ((magnitude >> 13) & 1u)) & 0xffffe000u;
    /* fp16 subnormals are multiples of 2^-24, the float32 ulp of 0.5 + |x|: the addition
     * rounds there, ties to even (ISO C: no reassociation without -ffast-math). */
    float absolute, shifted;
    memcpy(&absolute, &magnitude, 4);
    shifted = (absolute + 0.5f) - 0.5f;
    memcpy(&subnormal, &shifted, 4);
    uint32_t rounded = magnitude < 0x38800000u ? subnormal : normal;
    rounded = magnitude >= 0x477ff000u ? 0x7f800000u : rounded; /* >= 65520: to inf */
    rounded = magnitude >= 0x7f800000u ? magnitude : rounded;   /* inf, NaN kept */
    bits = sign | rounded;
    memcpy(&value, &bits, 4);
    return value;
}

static void round_portable(float *x, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; ++i) x[i] = round_one_portable(x[i]);
}

/* clamp to [0, 1] as torch's vectorised clamp: min(1, max(0, s)), NaN kept. */
static inline float clamp01(float s) {
    float low = (s > 0.0f || s == 0.0f || s != s) ? s : 0.0f; /* -0.0 and NaN kept */
    return (low < 1.0f || low != low) ? low : 1.0f;
}

static void hard_swish_portable(float *x, Py_ssize_t n, float alpha, float beta) {
    for (Py_ssize_t i = 0; i < n; ++i) {
        float gate = round_one_portable(clamp01(fmaf(x[i], alpha, beta)));
        x[i] = round_one_portable(x[i] * gate);
    }
}

#ifdef HAVE_X86
__attribute__((target("avx512f"))) static void round_avx512(float *x, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(h));
    }
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1u);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(mask, x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm512_mask_storeu_ps(x + i, mask, _mm512_cvtph_ps(h));
    }
}

/* max(0, s) then min(1, .): the operand order that returns s where s is NaN. */
__attribute__((target("avx512f"))) static inline __m512 hard_swish16(__m512 v, __m512 a, __m512 b) {
    const int rne = _MM_FROUND_TO_NEAREST_INT;
    __m512 gate = _mm512_min_ps(_mm512_set1_ps(1.0f),
                                _mm512_max_ps(_mm512_setzero_ps(), _mm512_fmadd_ps(v, a, b)));
    gate = _mm512_cvtph_ps(_mm512_cvtps_ph(gate, rne));
    return _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_mul_ps(v, gate), rne));
}

__attribute__((target("avx512f"))) static void hard_swish_avx512(float *x, Py_ssize_t n,
                                                                 float alpha, float beta) {
    __m512 a = _mm512_set1_ps(alpha), b = _mm512_set1_ps(beta);
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, hard_swish16(_mm512_loadu_ps(x + i), a, b));
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, mask, hard_swish16(_mm512_maskz_loadu_ps(mask, x + i), a, b));
    }
}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 hard_swish8(__m256 v, __m256 a,
                                                                         __m256 b) {
    const int rne = _MM_FROUND_TO_NEAREST_INT;
    __m256 gate = _mm256_min_ps(_mm256_set1_ps(1.0f),
                                _mm256_max_ps(_mm256_setzero_ps(), _mm256_fmadd_ps(v, a, b)));
    gate = _mm256_cvtph_ps(_mm256_cvtps_ph(gate, rne));
    return _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(v, gate), rne));
}

__attribute__((target("avx2,fma,f16c"))) static void hard_swish_avx2(float *x, Py_ssize_t n,
                                                                     float alpha, float beta) {
    __m256 a = _mm256_set1_ps(alpha), b = _mm256_set1_ps(beta);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, hard_swish8(_mm256_loadu_ps(x + i), a, b));
    if (i < n) { /* the tail through a zeroed 8-lane buffer: the same vector arithmetic */
        float lanes[8] = {0};
        memcpy(lanes, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(lanes, hard_swish8(_mm256_loadu_ps(lanes), a, b));
        memcpy(x + i, lanes, (size_t)(n - i) * sizeof(float));
    }
}

__attribute__((target("avx,f16c"))) static void round_f16c(float *x, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) {
        __m128i h = _mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT);
        x[i] = _mm_cvtss_f32(_mm_cvtph_ps(h));
    }
}
#endif

typedef void (*round_fn)(float *, Py_ssize_t);
typedef void (*hard_swish_fn)(float *, Py_ssize_t, float, float);
typedef struct {
    const char *name;
    round_fn round;
    hard_swish_fn hard_swish;
} path_t;

static const path_t PATHS[] = {
#ifdef HAVE_X86
    {"avx512f", round_avx512, hard_swish_avx512},
    {"avx2", round_f16c, hard_swish_avx2},
#endif
    {"portable", round_portable, hard_swish_portable},
};
#define N_PATHS ((int)(sizeof(PATHS) / sizeof(PATHS[0])))
static const path_t *chosen = &PATHS[N_PATHS - 1];

static int runs_here(const path_t *path) {
#ifdef HAVE_X86
    if (strcmp(path->name, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
    if (strcmp(path->name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
#endif
    return 1;
}

/* Below this many values the call is dispatch-bound: keep the GIL (releasing costs more). */
#define RELEASE_GIL_ABOVE 65536
#define RUN_ON(count, call)                                                                   \
    do {                                                                                      \
        if ((count) > RELEASE_GIL_ABOVE) {                                                    \
            Py_BEGIN_ALLOW_THREADS call;                                                      \
            Py_END_ALLOW_THREADS                                                              \
        } else {                                                                              \
            call;                                                                             \
        }                                                                                     \
    } while (0)

static int memory(PyObject *const *args, float **address, Py_ssize_t *count) {
    void *pointer = PyLong_AsVoidPtr(args[0]);
    if (pointer == NULL && PyErr_Occurred()) return -1;
    *count = PyLong_AsSsize_t(args[1]);
    if (*count == -1 && PyErr_Occurred()) return -1;
    if (*count < 0 || (pointer == NULL && *count > 0)) {
        PyErr_SetString(PyExc_ValueError, "count must be >= 0 and the address not null");
        return -1;
    }
    *address = (float *)pointer;
    return 0;
}

static PyObject *round_inplace(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    float *x;
    Py_ssize_t n;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "round_inplace(address, count)");
        return NULL;
    }
    if (memory(args, &x, &n) < 0) return NULL;
    round_fn fn = chosen->round;
    RUN_ON(n, fn(x, n));
    Py_RETURN_NONE;
}

static PyObject *hard_swish_inplace(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    float *x;
    Py_ssize_t n;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "hard_swish_inplace(address, count, alpha, beta)");
        return NULL;
    }
    if (memory(args, &x, &n) < 0) return NULL;
    /* Python floats to float32 as torch casts a scalar alpha / a 0-d beta (nearest). */
    float alpha = (float)PyFloat_AsDouble(args[2]), beta = (float)PyFloat_AsDouble(args[3]);
    if (PyErr_Occurred()) return NULL;
    hard_swish_fn fn = chosen->hard_swish;
    RUN_ON(n, fn(x, n, alpha, beta));
    Py_RETURN_NONE;
}

static PyObject *isa(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(chosen->name);
}

static PyObject *paths(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *names = PyList_New(0);
    if (names == NULL) return NULL;
    for (int i = 0; i < N_PATHS; ++i) {
        if (!runs_here(&PATHS[i])) continue;
        PyObject *name = PyUnicode_FromString(PATHS[i].name);
        if (name == NULL || PyList_Append(names, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(names);
            return NULL;
        }
        Py_DECREF(name);
    }
    return names;
}

static PyObject *use(PyObject *self, PyObject *arg) {
    (void)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) return NULL;
    for (int i = 0; i < N_PATHS; ++i) {
        if (strcmp(PATHS[i].name, name) == 0 && runs_here(&PATHS[i])) {
            chosen = &PATHS[i];
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "path %R does not run on this CPU (see paths())", arg);
    return NULL;
}

static PyMethodDef methods[] = {
    {"round_inplace", (PyCFunction)(void (*)(void))round_inplace, METH_FASTCALL,
     "round_inplace(address, count): float32 values rounded to fp16 in place."},
    {"hard_swish_inplace", (PyCFunction)(void (*)(void))hard_swish_inplace, METH_FASTCALL,
     "hard_swish_inplace(address, count, alpha, beta): MIL's fp16 hard-swish in place."},
    {"isa", isa, METH_NOARGS, "The path the kernels take on this CPU now."},
    {"paths", paths, METH_NOARGS, "The paths this CPU can run, fastest first."},
    {"use", use, METH_O, "use(name): take that path from now on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fp16round", "In-place fp16 rounding of float32 memory.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fp16round(void) {
#ifdef HAVE_X86
    __builtin_cpu_init();
#endif
    for (int i = 0; i < N_PATHS; ++i) {
        if (runs_here(&PATHS[i])) {
            chosen = &PATHS[i];
            break;
        }
    }
    return PyModule_Create(&module);
}
