/* Native hot loop of the renderer's Latin fast path (pixar.render.native; docs/rendering.md "Speed").

   fill(texts, words, space, x0, gap, pw, W, limit, out, eos) -> (todo, chars)

   For each text i: split at U+0020 (U+000A is drawn as a space, as in Renderer._fast_line), look every word up
   in `words` (the renderer's WordColumns: word -> column bytes, KeyError for a word the byte path cannot take),
   join the words' bytes with `space`, add the left margin x0, the EOS block and the white tail, and write the
   pixels straight into out[i] (uint8 [8, W], 1 = white; bit r of column byte c is row r of column c) and the
   EOS position into eos[i] (int64). Texts it does not take (not a str, longer than `limit`, a tab, a word
   refused, too long for the strip) are listed in `todo` for the pure-Python path, which gives the same pixels;
   out[i] and eos[i] are then left as they were. `chars` counts the characters laid out. Exceptions other than
   KeyError raised by `words` propagate. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* dst: 8 rows of W bytes; row r of column c = (cols[c] >> r) & 1, eight columns per 64-bit lane. With SSE2 (every
   x86-64) two lanes at a time with streaming stores when dst is 16-byte aligned: the strip is written once and not
   read into the cache first, which halves the memory traffic of a batch that does not fit in the cache. */
static void write_strip(const unsigned char *cols, Py_ssize_t W, unsigned char *dst) {
    const uint64_t low = 0x0101010101010101ULL;
    Py_ssize_t lanes = W / 8, k0 = 0;
#if defined(__SSE2__)
    if (((uintptr_t)dst & 15) == 0 && W % 16 == 0) {
        const __m128i lo = _mm_set1_epi8(1);
        for (int r = 0; r < 8; r++) {
            __m128i *row = (__m128i *)(dst + (Py_ssize_t)r * W);
            for (Py_ssize_t k = 0; k < W / 16; k++) {
                __m128i v = _mm_loadu_si128((const __m128i *)(cols + 16 * k));
                _mm_stream_si128(row + k, _mm_and_si128(_mm_srli_epi64(v, r), lo));
            }
        }
        _mm_sfence();
        k0 = lanes;
    }
#endif
    for (int r = 0; r < 8; r++) {
        unsigned char *row = dst + (Py_ssize_t)r * W;
        for (Py_ssize_t k = k0; k < lanes; k++) {
            uint64_t lane;
            memcpy(&lane, cols + 8 * k, 8);
            lane = (lane >> r) & low;
            memcpy(row + 8 * k, &lane, 8);
        }
    }
}

/* column bytes of one text's line into line[0:cap]: its length; -1 when the Python path must take it; -2 error */
static Py_ssize_t layout(PyObject *text, PyObject *words, const char *space, Py_ssize_t nspace,
                         unsigned char *line, Py_ssize_t cap) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t len = PyUnicode_GET_LENGTH(text), n = 0, ws = 0;
    int first = 1;
    for (Py_ssize_t j = 0; j <= len; j++) {
        Py_UCS4 ch = j < len ? PyUnicode_READ(kind, data, j) : ' ';
        if (ch == '\t') return -1;
        if (ch != ' ' && ch != '\n') continue;
        if (!first) {
            if (n + nspace > cap) return -1;
            memcpy(line + n, space, nspace);
            n += nspace;
        }
        first = 0;
        if (j > ws) {
            PyObject *word = PyUnicode_Substring(text, ws, j);
            if (word == NULL) return -2;
            PyObject *cols = PyObject_GetItem(words, word);
            Py_DECREF(word);
            if (cols == NULL) {
                if (PyErr_ExceptionMatches(PyExc_KeyError)) {
                    PyErr_Clear();
                    return -1;
                }
                return -2;
            }
            if (!PyBytes_Check(cols)) {
                Py_DECREF(cols);
                PyErr_SetString(PyExc_TypeError, "word columns must be bytes");
                return -2;
            }
            Py_ssize_t m = PyBytes_GET_SIZE(cols);
            if (n + m > cap) {
                Py_DECREF(cols);
                return -1;
            }
            memcpy(line + n, PyBytes_AS_STRING(cols), m);
            Py_DECREF(cols);
            n += m;
        }
        ws = j + 1;
    }
    return n;
}

static PyObject *fill(PyObject *self, PyObject *args) {
    PyObject *texts, *words, *todo = NULL;
    const char *space;
    Py_ssize_t nspace, x0, gap, pw, W, limit, chars = 0;
    Py_buffer out = {0}, eos = {0};
    if (!PyArg_ParseTuple(args, "O!Oy#nnnnnw*w*", &PyList_Type, &texts, &words, &space, &nspace, &x0, &gap, &pw,
                          &W, &limit, &out, &eos))
        return NULL;
    Py_ssize_t B = PyList_GET_SIZE(texts);
    unsigned char *cols = NULL;
    if ((out.len != 8 * B * W || W % 8 || W <= x0 + pw || eos.len != B * (Py_ssize_t)sizeof(int64_t) ||
              pw <= 0 || x0 < 0 || gap < 0)) {
        PyErr_SetString(PyExc_ValueError, "fill: out must hold len(texts) strips of 8 x W (W a multiple of 8 "
                                          "wider than x0 + pw), eos len(texts) int64");
        goto fail;
    }
    todo = PyList_New(0);
    if (todo == NULL) goto fail;
    if (B) {
        cols = malloc(W);
        if (cols == NULL) { PyErr_NoMemory(); goto fail; }
    }
    for (Py_ssize_t i = 0; i < B; i++) {
        PyObject *text = PyList_GET_ITEM(texts, i);
        Py_ssize_t n = -1;
        if (PyUnicode_CheckExact(text) && PyUnicode_GET_LENGTH(text) <= limit) {
            Py_INCREF(text);  /* `words` runs Python code on a miss */
            n = layout(text, words, space, nspace, cols + x0, W - x0);
            Py_DECREF(text);
            if (n == -2) goto fail;
        }
        Py_ssize_t eos_col = n < 0 ? 0 : (x0 + n + gap + pw - 1) / pw * pw;
        if (n < 0 || eos_col + pw > W) {
            PyObject *k = PyLong_FromSsize_t(i);
            if (k == NULL || PyList_Append(todo, k) < 0) { Py_XDECREF(k); goto fail; }
            Py_DECREF(k);
            continue;
        }
        memset(cols, 0xff, x0);
        memset(cols + x0 + n, 0xff, eos_col - x0 - n);
        memset(cols + eos_col, 0x00, pw);
        memset(cols + eos_col + pw, 0xff, W - eos_col - pw);
        write_strip(cols, W, (unsigned char *)out.buf + i * 8 * W);
        ((int64_t *)eos.buf)[i] = eos_col / pw;
        chars += PyUnicode_GET_LENGTH(text);
    }
    free(cols);
    PyBuffer_Release(&out);
    PyBuffer_Release(&eos);
    return Py_BuildValue("Nn", todo, chars);
fail:
    free(cols);
    Py_XDECREF(todo);
    PyBuffer_Release(&out);
    PyBuffer_Release(&eos);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fill", fill, METH_VARARGS, "fill(texts, words, space, x0, gap, pw, W, limit, out, eos) -> (todo, chars)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_strips", "Native fast path of pixar.render", -1, methods};

PyMODINIT_FUNC PyInit__strips(void) { return PyModule_Create(&module); }
