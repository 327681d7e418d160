/* Native hot loop of the renderer's Latin fast path (pixar.render.native; docs/rendering.md "Speed").

   fill(texts, words, cache, space, x0, gap, pw, W, limit, out, eos) -> (todo, chars)

   For each text i: split at U+0020 (U+000A is drawn as a space, as in LineLayout._fast_line), look every word up
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

/* A word cache in C (one per renderer, a capsule): word code units -> its column bytes, so that a word seen before
   costs a hash of its code units and one probe, not a str object and a dict lookup. A cached value is what
   `words[word]` returned (the renderer's columns of a word never change); refused words are never cached. Cleared
   when half full; words over LONG_WORD code units are not cached. */
#define CACHE_SLOTS (1 << 17)
#define LONG_WORD 64

typedef struct {
    uint64_t h;
    int kind;
    Py_ssize_t len;
    unsigned char *key;  /* len * kind bytes; NULL = empty slot */
    PyObject *cols;      /* bytes, owned */
} Entry;

typedef struct {
    Entry *slots;
    Py_ssize_t used;
} Cache;

static void cache_clear(Cache *c) {
    for (Py_ssize_t i = 0; i < CACHE_SLOTS; i++) {
        if (c->slots[i].key) {
            free(c->slots[i].key);
            Py_DECREF(c->slots[i].cols);
            c->slots[i].key = NULL;
        }
    }
    c->used = 0;
}

static void cache_free(PyObject *capsule) {
    Cache *c = PyCapsule_GetPointer(capsule, "pixar.render._strips.Cache");
    if (c == NULL) return;
    cache_clear(c);
    free(c->slots);
    free(c);
}

static PyObject *new_cache(PyObject *self, PyObject *noargs) {
    Cache *c = malloc(sizeof(Cache));
    if (c == NULL) return PyErr_NoMemory();
    c->slots = calloc(CACHE_SLOTS, sizeof(Entry));
    c->used = 0;
    if (c->slots == NULL) { free(c); return PyErr_NoMemory(); }
    PyObject *capsule = PyCapsule_New(c, "pixar.render._strips.Cache", cache_free);
    if (capsule == NULL) { free(c->slots); free(c); }
    return capsule;
}

/* new reference to the column bytes of text[a:b]; NULL with *refused = 1 (KeyError cleared) or an error set */
static PyObject *word_columns(Cache *c, PyObject *text, int kind, const unsigned char *data, Py_ssize_t a,
                              Py_ssize_t b, PyObject *words, int *refused) {
    Py_ssize_t len = b - a, nbytes = len * kind;
    const unsigned char *key = data + a * kind;
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (Py_ssize_t i = 0; i < nbytes; i++) h = (h ^ key[i]) * 1099511628211ULL;
    Py_ssize_t idx = (Py_ssize_t)(h & (CACHE_SLOTS - 1));
    if (c != NULL && len <= LONG_WORD) {
        for (;;) {
            Entry *e = &c->slots[idx];
            if (e->key == NULL) break;
            if (e->h == h && e->kind == kind && e->len == len && memcmp(e->key, key, nbytes) == 0) {
                Py_INCREF(e->cols);
                return e->cols;
            }
            idx = (idx + 1) & (CACHE_SLOTS - 1);
        }
    }
    PyObject *word = PyUnicode_Substring(text, a, b);
    if (word == NULL) return NULL;
    PyObject *cols = PyObject_GetItem(words, word);
    Py_DECREF(word);
    if (cols == NULL) {
        if (PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
            *refused = 1;
        }
        return NULL;
    }
    if (!PyBytes_Check(cols)) {
        Py_DECREF(cols);
        PyErr_SetString(PyExc_TypeError, "word columns must be bytes");
        return NULL;
    }
    if (c == NULL || len > LONG_WORD) return cols;
    if (c->used >= CACHE_SLOTS / 2) {
        cache_clear(c);
        idx = (Py_ssize_t)(h & (CACHE_SLOTS - 1));
    } else {
        while (c->slots[idx].key != NULL) idx = (idx + 1) & (CACHE_SLOTS - 1);
    }
    unsigned char *copy = malloc(nbytes ? nbytes : 1);
    if (copy == NULL) { Py_DECREF(cols); PyErr_NoMemory(); return NULL; }
    memcpy(copy, key, nbytes);
    Entry *e = &c->slots[idx];
    Py_INCREF(cols);  /* one reference for the cache, one for the caller */
    e->h = h; e->kind = kind; e->len = len; e->key = copy; e->cols = cols;
    c->used++;
    return cols;
}

/* column bytes of one text's line into line[0:cap]: its length; -1 when the Python path must take it; -2 error */
static Py_ssize_t layout(Cache *c, PyObject *text, PyObject *words, const char *space, Py_ssize_t nspace,
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
            int refused = 0;
            PyObject *cols = word_columns(c, text, kind, data, ws, j, words, &refused);
            if (cols == NULL) return refused ? -1 : -2;
            Py_ssize_t m = PyBytes_GET_SIZE(cols);
            if (n + m <= cap) memcpy(line + n, PyBytes_AS_STRING(cols), m);
            Py_DECREF(cols);
            if (n + m > cap) return -1;
            n += m;
        }
        ws = j + 1;
    }
    return n;
}

static PyObject *fill(PyObject *self, PyObject *args) {
    PyObject *list, *texts = NULL, *words, *capsule, *todo = NULL;
    Cache *cache = NULL;
    unsigned char *cols = NULL;
    const char *space;
    Py_ssize_t nspace, x0, gap, pw, W, limit, chars = 0;
    Py_buffer out = {0}, eos = {0};
    if (!PyArg_ParseTuple(args, "O!OOy#nnnnnw*w*", &PyList_Type, &list, &words, &capsule, &space, &nspace, &x0,
                          &gap, &pw, &W, &limit, &out, &eos))
        return NULL;
    texts = PyList_AsTuple(list);  /* `words` may run Python code (other threads) that changes the list */
    if (texts == NULL) {
        PyBuffer_Release(&out);
        PyBuffer_Release(&eos);
        return NULL;
    }
    Py_ssize_t B = PyTuple_GET_SIZE(texts);
    if (capsule != Py_None) {
        cache = PyCapsule_GetPointer(capsule, "pixar.render._strips.Cache");
        if (cache == NULL) goto fail;
    }
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
        PyObject *text = PyTuple_GET_ITEM(texts, i);
        Py_ssize_t n = -1;
        if (PyUnicode_CheckExact(text) && PyUnicode_GET_LENGTH(text) <= limit) {
            n = layout(cache, text, words, space, nspace, cols + x0, W - x0);
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
    Py_DECREF(texts);
    PyBuffer_Release(&out);
    PyBuffer_Release(&eos);
    return Py_BuildValue("Nn", todo, chars);
fail:
    free(cols);
    Py_XDECREF(texts);
    Py_XDECREF(todo);
    PyBuffer_Release(&out);
    PyBuffer_Release(&eos);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fill", fill, METH_VARARGS, "fill(texts, words, cache, space, x0, gap, pw, W, limit, out, eos) -> (todo, chars)"},
    {"new_cache", new_cache, METH_NOARGS, "new_cache() -> a word cache for fill (one per renderer)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_strips", "Native fast path of pixar.render", -1, methods};

PyMODINIT_FUNC PyInit__strips(void) { return PyModule_Create(&module); }
