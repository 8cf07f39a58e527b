/* The validator's two hot tables, in compiled code: token counts of texts and words, and line digests.

WordCache counts tokens exactly, remembering what recurs at two scales. Whole texts: a shared system
prompt on every line, the role names. Words: most words of a large file were already seen a few
lines earlier. Both OpenAI encodings start a new pre-token at every space that is followed by a
non-whitespace character, and BPE never merges across pre-tokens, so the count of a text is the sum
of the counts of the pieces between those spaces (each piece after the first starts with its space).
WordCache.count cuts a text there, looks each piece up in a bounded open-addressing table, and asks
the real tokenizer (a Python callable) only for pieces it has not seen. A text with no UTF-8 form
(lone surrogates) gets None: the caller counts it whole. bot/datasets/tokens.py gives the argument;
tests check the counts against tiktoken and against counting whole.

LineDigests maps the 64-bit digest of each example line to the first line it was seen on, in flat
arrays (12 bytes a line at most half full), and merges the table of a later range of the file.

Done in Python, cutting and looking up cost about 0.3 microseconds a word and merging two ranges'
digests 0.18 s on a 100 MB file; here a word costs a hash and a comparison. speedups.py holds the
same tables in Python for machines without a C compiler; tests run both.
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- WordCache */

typedef struct {
    uint64_t hash; /* 0: empty slot */
    uint32_t offset;
    uint16_t length;
    uint16_t tokens;
} Slot;

typedef struct {
    PyObject_HEAD
    PyObject *count_piece;
    /* pieces */
    Slot *slots;
    size_t mask;
    size_t used;
    size_t limit;
    size_t max_piece_bytes;
    char *keys;
    size_t keys_used;
    size_t keys_capacity;
    /* whole texts: cached the second time they are seen, within an entry and a character budget */
    PyObject *texts;
    size_t text_limit;
    size_t text_chars;
    size_t text_chars_used;
    Py_hash_t *seen_once;
    size_t seen_mask;
    size_t seen_used;
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
remember_piece(WordCache *self, uint64_t hash, const char *piece, size_t length, Py_ssize_t tokens)
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
    if (tokens < 0 || remember_piece(self, hash, piece, length, tokens) < 0) {
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
    if (length == 0) {
        return 0;
    }
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

/* Whether the text with this hash was seen before; records it if not. */
static int
seen_before(WordCache *self, Py_hash_t hash)
{
    hash = hash ? hash : 1;
    size_t slot = (size_t)hash & self->seen_mask;
    for (; self->seen_once[slot] != 0; slot = (slot + 1) & self->seen_mask) {
        if (self->seen_once[slot] == hash) {
            return 1;
        }
    }
    if (self->seen_used * 2 >= self->seen_mask + 1) {
        memset(self->seen_once, 0, (self->seen_mask + 1) * sizeof(Py_hash_t));
        self->seen_used = 0;
        slot = (size_t)hash & self->seen_mask;
    }
    self->seen_once[slot] = hash;
    self->seen_used++;
    return 0;
}

/* Keep a text's count when the text recurs: most texts are unique, and memory must not grow with
   the file, while the ones that recur (system prompts, tools, roles) recur a lot. */
static int
remember_text(WordCache *self, PyObject *text, Py_ssize_t characters, PyObject *tokens)
{
    Py_hash_t hash = PyObject_Hash(text);
    if (hash == -1) {
        return -1;
    }
    if (!seen_before(self, hash)) {
        return 0;
    }
    if ((size_t)PyDict_GET_SIZE(self->texts) >= self->text_limit ||
        self->text_chars_used + (size_t)characters > self->text_chars) {
        PyDict_Clear(self->texts);
        self->text_chars_used = 0;
    }
    self->text_chars_used += (size_t)characters;
    return PyDict_SetItem(self->texts, text, tokens);
}

static PyObject *
WordCache_count(WordCache *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "count() takes a str");
        return NULL;
    }
    Py_ssize_t characters = PyUnicode_GET_LENGTH(text);
    int cacheable = (size_t)characters <= self->text_chars;
    if (cacheable) {
        PyObject *known = PyDict_GetItemWithError(self->texts, text);
        if (known != NULL) {
            return Py_NewRef(known);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
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
    Py_ssize_t count = count_split(self, utf8, (size_t)length);
    if (count < 0) {
        return NULL;
    }
    PyObject *tokens = PyLong_FromSsize_t(count);
    if (tokens != NULL && cacheable && remember_text(self, text, characters, tokens) < 0) {
        Py_CLEAR(tokens);
    }
    return tokens;
}

static Py_ssize_t
WordCache_length(WordCache *self)
{
    return (Py_ssize_t)self->used;
}

static size_t
power_of_two_at_least(size_t wanted)
{
    size_t capacity = 1;
    while (capacity < wanted) {
        capacity <<= 1;
    }
    return capacity;
}

static int
WordCache_init(WordCache *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"count_piece", "limit", "max_piece_bytes", "text_limit", "text_chars", NULL};
    PyObject *count_piece;
    /* Keyword-only arguments are optional to the parser; a missing size stays 0 and is refused below. */
    Py_ssize_t limit = 0, max_piece_bytes = 0, text_limit = 0, text_chars = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$nnnn", keywords, &count_piece, &limit, &max_piece_bytes,
                                     &text_limit, &text_chars)) {
        return -1;
    }
    if (self->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "WordCache is initialized once");
        return -1;
    }
    /* Slots hold 32-bit key offsets and 16-bit lengths and counts; these bounds keep them in range. */
    if (!PyCallable_Check(count_piece) || limit < 1 || limit > (1 << 20) || max_piece_bytes < 1 ||
        max_piece_bytes > 4096 || text_limit < 1 || text_limit > (1 << 20) || text_chars < 1) {
        PyErr_SetString(PyExc_ValueError, "WordCache needs a callable, 1 <= limit <= 2**20, "
                                          "1 <= max_piece_bytes <= 4096, 1 <= text_limit <= 2**20 and text_chars >= 1");
        return -1;
    }
    size_t capacity = power_of_two_at_least((size_t)limit * 2);
    size_t seen_capacity = power_of_two_at_least((size_t)text_limit * 16);
    size_t keys_capacity = 4096;
    Slot *slots = PyMem_Calloc(capacity, sizeof(Slot));
    char *keys = PyMem_Malloc(keys_capacity);
    Py_hash_t *seen_once = PyMem_Calloc(seen_capacity, sizeof(Py_hash_t));
    PyObject *texts = PyDict_New();
    if (slots == NULL || keys == NULL || seen_once == NULL || texts == NULL) {
        PyMem_Free(slots);
        PyMem_Free(keys);
        PyMem_Free(seen_once);
        Py_XDECREF(texts);
        PyErr_NoMemory();
        return -1;
    }
    Py_XSETREF(self->texts, texts);
    Py_XSETREF(self->count_piece, Py_NewRef(count_piece));
    self->slots = slots;
    self->mask = capacity - 1;
    self->used = 0;
    self->limit = (size_t)limit;
    self->max_piece_bytes = (size_t)max_piece_bytes;
    self->keys = keys;
    self->keys_used = 0;
    self->keys_capacity = keys_capacity;
    self->text_limit = (size_t)text_limit;
    self->text_chars = (size_t)text_chars;
    self->text_chars_used = 0;
    self->seen_once = seen_once;
    self->seen_mask = seen_capacity - 1;
    self->seen_used = 0;
    return 0;
}

static int
WordCache_traverse(WordCache *self, visitproc visit, void *arg)
{
    Py_VISIT(self->count_piece);
    Py_VISIT(self->texts);
    return 0;
}

static int
WordCache_clear(WordCache *self)
{
    Py_CLEAR(self->count_piece);
    Py_CLEAR(self->texts);
    return 0;
}

static void
WordCache_dealloc(WordCache *self)
{
    PyObject_GC_UnTrack(self);
    WordCache_clear(self);
    PyMem_Free(self->slots);
    PyMem_Free(self->keys);
    PyMem_Free(self->seen_once);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef WordCache_methods[] = {
    {"count", (PyCFunction)WordCache_count, METH_O,
     "count(text) -> int | None: the text's exact token count, or None for a text with no UTF-8 form "
     "(count it whole)."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods WordCache_as_sequence = {
    .sq_length = (lenfunc)WordCache_length,
};

static PyTypeObject WordCacheType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bot.datasets._speedups.WordCache",
    .tp_doc = PyDoc_STR("WordCache(count_piece, *, limit, max_piece_bytes, text_limit, text_chars): exact token "
                        "counts, remembered by word and by recurring text."),
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

/* -------------------------------------------------------------- LineDigests */

typedef struct {
    PyObject_HEAD
    uint64_t *keys; /* 0: empty slot */
    uint32_t *lines;
    size_t mask;
    size_t size;
} LineDigests;

typedef struct {
    uint64_t key;
    uint32_t line;
} Entry;

static int
LineDigests_allocate(LineDigests *self, size_t capacity)
{
    uint64_t *keys = PyMem_Calloc(capacity, sizeof(uint64_t));
    uint32_t *lines = PyMem_Calloc(capacity, sizeof(uint32_t));
    if (keys == NULL || lines == NULL) {
        PyMem_Free(keys);
        PyMem_Free(lines);
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(self->keys);
    PyMem_Free(self->lines);
    self->keys = keys;
    self->lines = lines;
    self->mask = capacity - 1;
    self->size = 0;
    return 0;
}

/* The first line with this key; records ``line`` (and returns it) when the key is new; 0 on failure. */
static uint32_t
first_or_add(LineDigests *self, uint64_t key, uint32_t line)
{
    key = key ? key : 1;
    size_t slot = (size_t)key & self->mask;
    for (; self->keys[slot] != 0; slot = (slot + 1) & self->mask) {
        if (self->keys[slot] == key) {
            return self->lines[slot];
        }
    }
    self->keys[slot] = key;
    self->lines[slot] = line;
    self->size++;
    if (self->size * 2 > self->mask + 1) {
        uint64_t *old_keys = self->keys;
        uint32_t *old_lines = self->lines;
        size_t old_capacity = self->mask + 1;
        self->keys = NULL;
        self->lines = NULL;
        if (LineDigests_allocate(self, old_capacity * 2) < 0) {
            self->keys = old_keys;
            self->lines = old_lines;
            return 0;
        }
        for (size_t index = 0; index < old_capacity; index++) {
            if (old_keys[index] != 0) {
                first_or_add(self, old_keys[index], old_lines[index]);
            }
        }
        PyMem_Free(old_keys);
        PyMem_Free(old_lines);
    }
    return line;
}

static int
LineDigests_init(LineDigests *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "", keywords)) {
        return -1;
    }
    return LineDigests_allocate(self, 4096);
}

static int
ensure_allocated(LineDigests *self)
{
    return self->keys != NULL ? 0 : LineDigests_allocate(self, 4096);
}

static PyObject *
LineDigests_first_or_add(LineDigests *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "first_or_add(digest, line) takes two integers");
        return NULL;
    }
    uint64_t key = PyLong_AsUnsignedLongLong(args[0]);
    if (key == (uint64_t)-1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long line = PyLong_AsUnsignedLong(args[1]);
    if (line == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (line == 0 || line > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "line numbers run from 1 to 2**32 - 1");
        return NULL;
    }
    if (ensure_allocated(self) < 0) {
        return NULL;
    }
    uint32_t first = first_or_add(self, key, (uint32_t)line);
    return first == 0 ? NULL : PyLong_FromUnsignedLong(first);
}

static int
by_line(const void *left, const void *right)
{
    uint32_t a = ((const Entry *)left)->line, b = ((const Entry *)right)->line;
    return (a > b) - (a < b);
}

static PyTypeObject LineDigestsType;

static PyObject *
LineDigests_absorb(LineDigests *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &LineDigestsType)) {
        PyErr_SetString(PyExc_TypeError, "absorb(later, offset) takes LineDigests and an integer");
        return NULL;
    }
    LineDigests *later = (LineDigests *)args[0];
    unsigned long offset = PyLong_AsUnsignedLong(args[1]);
    if (offset == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (ensure_allocated(self) < 0) {
        return NULL;
    }
    PyObject *repeats = PyList_New(0);
    if (repeats == NULL || later->keys == NULL) {
        return repeats;
    }
    Entry *entries = PyMem_Malloc((later->size ? later->size : 1) * sizeof(Entry));
    if (entries == NULL) {
        Py_DECREF(repeats);
        return PyErr_NoMemory();
    }
    size_t count = 0;
    for (size_t index = 0; index <= later->mask; index++) {
        if (later->keys[index] != 0) {
            entries[count++] = (Entry){later->keys[index], later->lines[index]};
        }
    }
    /* In line order, so that each repeat names the earliest line and the list comes out sorted. */
    qsort(entries, count, sizeof(Entry), by_line);
    for (size_t index = 0; index < count; index++) {
        unsigned long line = entries[index].line + offset;
        if (line > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "line numbers run from 1 to 2**32 - 1");
            goto failed;
        }
        uint32_t first = first_or_add(self, entries[index].key, (uint32_t)line);
        if (first == 0) {
            goto failed;
        }
        if (first != line) {
            PyObject *repeat = Py_BuildValue("(kI)", line, first);
            if (repeat == NULL || PyList_Append(repeats, repeat) < 0) {
                Py_XDECREF(repeat);
                goto failed;
            }
            Py_DECREF(repeat);
        }
    }
    PyMem_Free(entries);
    return repeats;
failed:
    PyMem_Free(entries);
    Py_DECREF(repeats);
    return NULL;
}

static PyObject *
LineDigests_getstate(LineDigests *self, PyObject *Py_UNUSED(ignored))
{
    /* Only the entries travel (a worker's table goes to the parent through a pipe): 12 bytes each. */
    size_t size = self->keys == NULL ? 0 : self->size;
    PyObject *state = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(size * sizeof(Entry)));
    if (state == NULL || size == 0) {
        return state;
    }
    Entry *entries = (Entry *)PyBytes_AS_STRING(state);
    size_t count = 0;
    for (size_t index = 0; index <= self->mask; index++) {
        if (self->keys[index] != 0) {
            entries[count++] = (Entry){self->keys[index], self->lines[index]};
        }
    }
    return state;
}

static PyObject *
LineDigests_setstate(LineDigests *self, PyObject *state)
{
    if (!PyBytes_Check(state) || PyBytes_GET_SIZE(state) % sizeof(Entry) != 0) {
        PyErr_SetString(PyExc_ValueError, "not the state of LineDigests");
        return NULL;
    }
    size_t count = (size_t)PyBytes_GET_SIZE(state) / sizeof(Entry);
    if (LineDigests_allocate(self, power_of_two_at_least(count * 2 + 4096)) < 0) {
        return NULL;
    }
    const Entry *entries = (const Entry *)PyBytes_AS_STRING(state);
    for (size_t index = 0; index < count; index++) {
        if (entries[index].key == 0 || entries[index].line == 0) {
            PyErr_SetString(PyExc_ValueError, "not the state of LineDigests");
            return NULL;
        }
        if (first_or_add(self, entries[index].key, entries[index].line) == 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static Py_ssize_t
LineDigests_length(LineDigests *self)
{
    return self->keys == NULL ? 0 : (Py_ssize_t)self->size;
}

static void
LineDigests_dealloc(LineDigests *self)
{
    PyMem_Free(self->keys);
    PyMem_Free(self->lines);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef LineDigests_methods[] = {
    {"first_or_add", (PyCFunction)(void (*)(void))LineDigests_first_or_add, METH_FASTCALL,
     "first_or_add(digest, line) -> int: the first line with this digest; records line when the digest is new."},
    {"absorb", (PyCFunction)(void (*)(void))LineDigests_absorb, METH_FASTCALL,
     "absorb(later, offset) -> list[tuple[int, int]]: add a later range's digests, its lines moved down by "
     "offset; (line, first line) of each that was already here, in line order."},
    {"__getstate__", (PyCFunction)LineDigests_getstate, METH_NOARGS, NULL},
    {"__setstate__", (PyCFunction)LineDigests_setstate, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods LineDigests_as_sequence = {
    .sq_length = (lenfunc)LineDigests_length,
};

static PyTypeObject LineDigestsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bot.datasets._speedups.LineDigests",
    .tp_doc = PyDoc_STR("LineDigests(): 64-bit digest of each example line -> the first line it was seen on."),
    .tp_basicsize = sizeof(LineDigests),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LineDigests_init,
    .tp_dealloc = (destructor)LineDigests_dealloc,
    .tp_methods = LineDigests_methods,
    .tp_as_sequence = &LineDigests_as_sequence,
};

/* ------------------------------------------------------------------- module */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bot.datasets._speedups",
    .m_doc = PyDoc_STR("The validator's token-count cache and line digests, in compiled code."),
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&WordCacheType) < 0 || PyType_Ready(&LineDigestsType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "WordCache", (PyObject *)&WordCacheType) < 0 ||
        PyModule_AddObjectRef(module, "LineDigests", (PyObject *)&LineDigestsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
