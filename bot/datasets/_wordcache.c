/* A word cache for exact BPE token counts, in compiled code.

Training data repeats its vocabulary: most words of a large file were already seen a few lines
earlier. Both OpenAI encodings start a new pre-token at every space that is followed by a
non-whitespace character, and BPE never merges across pre-tokens, so the count of a text is the sum
of the counts of the pieces between those spaces (each piece after the first starts with its space).
WordCache.count cuts a text there, looks each piece up in a bounded open-addressing table, and asks
the real tokenizer (a Python callable) only for pieces it has not seen. A text with no UTF-8 form
(lone surrogates) gets None: the caller counts it whole. bot/datasets/tokens.py gives the argument;
tests check the counts against tiktoken and against counting whole.

Done in Python, cutting and looking up cost about 0.3 microseconds a word, the validator's largest
cost; here a word costs a hash and a comparison.
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t hash; /* 0: empty slot */
    uint32_t offset;
    uint16_t length;
    uint16_t tokens;
} Slot;

typedef struct {
    PyObject_HEAD
    PyObject *count_piece;
    Slot *slots;
    size_t mask;
    size_t used;
    size_t limit;
    size_t max_piece_bytes;
    char *keys;
    size_t keys_used;
    size_t keys_capacity;
} WordCache;

static uint64_t
hash_bytes(const unsigned char *data, size_t length)
{
    /* FNV-1a, then a final mix so that the low bits (the slot index) depend on every byte. */
    uint64_t hash = 14695981039346656037ULL;
    for (size_t i = 0; i < length; i++) {
        hash ^= data[i];
        hash *= 1099511628211ULL;
    }
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdULL;
    hash ^= hash >> 33;
    return hash ? hash : 1;
}

/* The tokenizer's count of one piece; -1 with an exception set on failure. */
static Py_ssize_t
count_with_tokenizer(WordCache *self, const char *piece, size_t length)
{
    PyObject *text = PyUnicode_DecodeUTF8(piece, (Py_ssize_t)length, NULL);
    if (text == NULL) {
        return -1;
    }
    PyObject *result = PyObject_CallOneArg(self->count_piece, text);
    Py_DECREF(text);
    if (result == NULL) {
        return -1;
    }
    Py_ssize_t tokens = PyLong_AsSsize_t(result);
    Py_DECREF(result);
    if (tokens < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "the tokenizer returned a negative count");
    }
    return tokens;
}

static int
remember(WordCache *self, uint64_t hash, const char *piece, size_t length, Py_ssize_t tokens)
{
    if (self->used >= self->limit) {
        /* Bounded memory: start over rather than grow with the file. Frequent words come back
           within a few lines; the ones lost were mostly seen once. */
        memset(self->slots, 0, (self->mask + 1) * sizeof(Slot));
        self->used = 0;
        self->keys_used = 0;
    }
    if (self->keys_used + length > self->keys_capacity) {
        size_t capacity = self->keys_capacity * 2;
        while (capacity < self->keys_used + length) {
            capacity *= 2;
        }
        char *keys = PyMem_Realloc(self->keys, capacity);
        if (keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->keys = keys;
        self->keys_capacity = capacity;
    }
    size_t slot = (size_t)hash & self->mask;
    while (self->slots[slot].hash != 0) {
        slot = (slot + 1) & self->mask;
    }
    memcpy(self->keys + self->keys_used, piece, length);
    self->slots[slot] = (Slot){hash, (uint32_t)self->keys_used, (uint16_t)length, (uint16_t)tokens};
    self->keys_used += length;
    self->used++;
    return 0;
}

static Py_ssize_t
count_piece(WordCache *self, const char *piece, size_t length)
{
    if (length == 0) {
        return 0;
    }
    if (length > self->max_piece_bytes) {
        return count_with_tokenizer(self, piece, length);
    }
    uint64_t hash = hash_bytes((const unsigned char *)piece, length);
    for (size_t slot = (size_t)hash & self->mask; self->slots[slot].hash != 0; slot = (slot + 1) & self->mask) {
        const Slot *candidate = &self->slots[slot];
        if (candidate->hash == hash && candidate->length == length &&
            memcmp(self->keys + candidate->offset, piece, length) == 0) {
            return candidate->tokens;
        }
    }
    Py_ssize_t tokens = count_with_tokenizer(self, piece, length);
    if (tokens < 0 || remember(self, hash, piece, length, tokens) < 0) {
        return -1;
    }
    return tokens;
}

/* Whether the UTF-8 code point at text[i] is whitespace as Python's str.isspace() sees it: a
   superset of the pre-tokenizers' whitespace (Unicode White_Space), where an extra one only means
   one cut fewer. */
static int
is_space_at(const unsigned char *text, size_t i, size_t length)
{
    unsigned char lead = text[i];
    Py_UCS4 code_point;
    if (lead < 0x80) {
        code_point = lead;
    }
    else if ((lead & 0xE0) == 0xC0 && i + 1 < length) {
        code_point = ((Py_UCS4)(lead & 0x1F) << 6) | (text[i + 1] & 0x3F);
    }
    else if ((lead & 0xF0) == 0xE0 && i + 2 < length) {
        code_point = ((Py_UCS4)(lead & 0x0F) << 12) | ((Py_UCS4)(text[i + 1] & 0x3F) << 6) | (text[i + 2] & 0x3F);
    }
    else {
        return 0; /* no four-byte code point is whitespace */
    }
    return Py_UNICODE_ISSPACE(code_point);
}

/* The count of a UTF-8 text as the sum of its pieces, cut before every space that is followed by
   a non-whitespace character; -1 with an exception set on failure. */
static Py_ssize_t
count_split(WordCache *self, const char *text, size_t length)
{
    const unsigned char *bytes = (const unsigned char *)text;
    Py_ssize_t total = 0;
    size_t start = 0;
    for (const char *space = memchr(text, ' ', length); space != NULL;
         space = memchr(space + 1, ' ', length - (size_t)(space + 1 - text))) {
        size_t cut = (size_t)(space - text);
        if (cut > start && cut + 1 < length && !is_space_at(bytes, cut + 1, length)) {
            Py_ssize_t tokens = count_piece(self, text + start, cut - start);
            if (tokens < 0) {
                return -1;
            }
            total += tokens;
            start = cut;
        }
    }
    Py_ssize_t tokens = count_piece(self, text + start, length - start);
    return tokens < 0 ? -1 : total + tokens;
}

static PyObject *
WordCache_count(WordCache *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "count() takes a str");
        return NULL;
    }
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            return NULL;
        }
        /* Lone surrogates have no UTF-8 form: the caller counts such a text whole. */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t tokens = count_split(self, utf8, (size_t)length);
    return tokens < 0 ? NULL : PyLong_FromSsize_t(tokens);
}

static Py_ssize_t
WordCache_length(WordCache *self)
{
    return (Py_ssize_t)self->used;
}

static int
WordCache_init(WordCache *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"count_piece", "limit", "max_piece_bytes", NULL};
    PyObject *count_piece;
    Py_ssize_t limit, max_piece_bytes;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O$nn", keywords, &count_piece, &limit, &max_piece_bytes)) {
        return -1;
    }
    /* Slots hold 32-bit key offsets and 16-bit lengths and counts; these bounds keep them in range. */
    if (!PyCallable_Check(count_piece) || limit < 1 || limit > (1 << 20) || max_piece_bytes < 1 ||
        max_piece_bytes > 4096) {
        PyErr_SetString(PyExc_ValueError,
                        "WordCache needs a callable, 1 <= limit <= 2**20 and 1 <= max_piece_bytes <= 4096");
        return -1;
    }
    size_t capacity = 1;
    while (capacity < (size_t)limit * 2) {
        capacity <<= 1;
    }
    size_t keys_capacity = 4096;
    Slot *slots = PyMem_Calloc(capacity, sizeof(Slot));
    char *keys = PyMem_Malloc(keys_capacity);
    if (slots == NULL || keys == NULL) {
        PyMem_Free(slots);
        PyMem_Free(keys);
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(self->slots);
    PyMem_Free(self->keys);
    Py_XSETREF(self->count_piece, Py_NewRef(count_piece));
    self->slots = slots;
    self->mask = capacity - 1;
    self->used = 0;
    self->limit = (size_t)limit;
    self->max_piece_bytes = (size_t)max_piece_bytes;
    self->keys = keys;
    self->keys_used = 0;
    self->keys_capacity = keys_capacity;
    return 0;
}

static int
WordCache_traverse(WordCache *self, visitproc visit, void *arg)
{
    Py_VISIT(self->count_piece);
    return 0;
}

static int
WordCache_clear(WordCache *self)
{
    Py_CLEAR(self->count_piece);
    return 0;
}

static void
WordCache_dealloc(WordCache *self)
{
    PyObject_GC_UnTrack(self);
    WordCache_clear(self);
    PyMem_Free(self->slots);
    PyMem_Free(self->keys);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef WordCache_methods[] = {
    {"count", (PyCFunction)WordCache_count, METH_O,
     "count(text) -> int | None: the text's exact token count from its pieces, or None for a text with no "
     "UTF-8 form (count it whole)."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods WordCache_as_sequence = {
    .sq_length = (lenfunc)WordCache_length,
};

static PyTypeObject WordCacheType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bot.datasets._wordcache.WordCache",
    .tp_doc = PyDoc_STR("WordCache(count_piece, *, limit, max_piece_bytes): exact token counts, word by word."),
    .tp_basicsize = sizeof(WordCache),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)WordCache_init,
    .tp_dealloc = (destructor)WordCache_dealloc,
    .tp_traverse = (traverseproc)WordCache_traverse,
    .tp_clear = (inquiry)WordCache_clear,
    .tp_methods = WordCache_methods,
    .tp_as_sequence = &WordCache_as_sequence,
};

static struct PyModuleDef wordcache_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bot.datasets._wordcache",
    .m_doc = PyDoc_STR("Exact token counts with a word cache in compiled code."),
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__wordcache(void)
{
    if (PyType_Ready(&WordCacheType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&wordcache_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "WordCache", (PyObject *)&WordCacheType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
