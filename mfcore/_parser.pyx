# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, infer_types=True
"""The compiled reader of models.mp: text -> the raw tree of mfcore/language/raw.py.

It accepts exactly what models.lark accepts, read the way lark_reader.py reads it,
and returns the same tree; any text it rejects raises ReadError, and parser.py asks
the Lark reader to explain it. It does no more than that: the meaning of the tree is
validate.py's, shared by both readers.

Lark's contextual lexer decides, by parser state, whether a word is a keyword, and
its LALR states merge contexts; this reader reproduces the outcome with five lexer
modes (see _Mode). Positions are (line, column), 1-based, columns counted in code
points, as Lark counts them. tests/test_parser_differential.py holds both readers
to the same answers.
"""
cimport cython
from cpython.long cimport PyLong_FromLongLong, PyLong_FromSsize_t
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_FromKindAndData, PyUnicode_GET_LENGTH
from cpython.unicode cimport PyUnicode_KIND, PyUnicode_Substring
from libc.stdint cimport uint64_t
from libc.string cimport memset

import gc

from decimal import Decimal

from mfcore.language.raw import Call, ListValue, Name, ObjectValue, RawEnum, RawModel, TupleValue
from mfcore.schema import exact_decimal


class ReadError(ValueError):
    """The text is not models.mp; the Lark reader says why and where."""


# Deeper nesting of lists, tuples, calls and objects than this is refused: the limit
# of the language (lark_reader.MAX_NESTING), which the Lark reader, asked next,
# explains with its place.
cdef enum:
    MAX_NESTING = 100
    EOF_CHAR = 0x110000  # no code point: what ch() returns past the end

cdef enum _Token:
    T_EOF
    T_NAME
    T_ENUM
    T_MODEL
    T_EXTENDS
    T_TRUE
    T_FALSE
    T_NULL
    T_STRING
    T_NUMBER
    T_NL
    T_SEMI
    T_COMMA
    T_EQUAL
    T_DOT
    T_LPAR
    T_RPAR
    T_LSQB
    T_RSQB
    T_LBRACE
    T_RBRACE
    T_COLON

# How the next word is lexed. It depends on the token before it, as Lark's
# contextual lexer makes it depend on the LALR state that token leads to; a keyword
# string inside the NAME pattern is recognised only where the state accepts it.
cdef enum _Mode:
    # a NAME, whatever it spells (after `model`, `.`, an enum's `{`, `,` or newline)
    M_PLAIN
    # a NAME, or true/false/null when it spells exactly that (where a value starts)
    M_VALUE
    # a NAME, or enum/model/extends when it spells exactly that: after a model's `{`,
    # and after `;` or a newline at the top level or in a model body (one merged
    # LALR state accepts all of these)
    M_SEP
    # only the keywords `enum`/`model` (whole words): at the start of the file and
    # after a declaration's closing brace
    M_DECL
    # only the keyword `extends` (a whole word): after `model Name`
    M_EXTENDS


cdef extern from "Python.h":
    ctypedef unsigned char Py_UCS1
    ctypedef unsigned short Py_UCS2
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    ctypedef PyObject* (*allocfunc)(PyTypeObject*, Py_ssize_t)
    ctypedef struct _TypeAlloc "PyTypeObject":
        allocfunc tp_alloc
    PyObject* PyType_GenericAlloc(PyTypeObject*, Py_ssize_t) except NULL
    int PyObject_GC_IsTracked(PyObject*)
    void PyObject_GC_UnTrack(void*)
    Py_ssize_t PyTuple_GET_SIZE(PyObject*)
    PyObject* PyTuple_GET_ITEM(PyObject*, Py_ssize_t)


# Building a Call through its Python __init__ takes a fifth of the time of reading
# a big schema, so Call objects are made by filling their three slots directly.
# _init_call_layout checks that Call is still the plain slotted class this assumes
# and that the result equals Call(...); otherwise Call(...) is used.
cdef Py_ssize_t _CALL_NAME = -1
cdef Py_ssize_t _CALL_POS = -1
cdef Py_ssize_t _CALL_ARGS = -1


cdef Py_ssize_t _slot_offset(type cls, str attr):
    descr = cls.__dict__.get(attr)
    if type(descr).__name__ != "member_descriptor":
        return -1
    return (<PyMemberDescrObject*>descr).d_member.offset


cdef inline void _set_slot(PyObject* obj, Py_ssize_t offset, object value):
    Py_INCREF(value)
    (<PyObject**>(<char*>obj + offset))[0] = <PyObject*>value


cdef object _make_call(object name, object pos, object args):
    if _CALL_ARGS < 0:
        return Call(name, pos, args)
    cdef PyObject* obj = PyType_GenericAlloc(<PyTypeObject*>Call, 0)
    _set_slot(obj, _CALL_NAME, name)
    _set_slot(obj, _CALL_POS, pos)
    _set_slot(obj, _CALL_ARGS, args)
    result = <object>obj
    Py_DECREF(result)  # the reference PyType_GenericAlloc returned
    return result


cdef void _init_call_layout():
    global _CALL_NAME, _CALL_POS, _CALL_ARGS
    if (<_TypeAlloc*>Call).tp_alloc != <allocfunc>PyType_GenericAlloc:
        return
    if Call.__new__ is not object.__new__ or type(Call).__call__ is not type.__call__:
        return
    if set(Call.__slots__) != {"name", "pos", "args"} or any(
            base.__dict__.get("__slots__") != () for base in Call.__mro__[1:] if base is not object):
        return
    name = _slot_offset(Call, "name")
    pos = _slot_offset(Call, "pos")
    args = _slot_offset(Call, "args")
    if name <= 0 or pos <= 0 or args <= 0:
        return
    _CALL_NAME, _CALL_POS, _CALL_ARGS = name, pos, args
    name, pos, args = "F", (1, 2), ((None, 1, (1, 4)),)
    made = _make_call(name, pos, args)
    if type(made) is not Call or made != Call(name, pos, args) or made.name is not name \
            or made.pos is not pos or made.args is not args:
        _CALL_NAME = _CALL_POS = _CALL_ARGS = -1


_init_call_layout()


cdef inline tuple _settled(tuple items):
    """items, taken off the cyclic collector's list when nothing in it is on that list.

    CPython does the same to such tuples, but only when a collection reaches them;
    doing it at once keeps most of a big tree (positions, arguments, members) out
    of every collection that runs while the tree is alive.
    """
    cdef Py_ssize_t k
    for k in range(PyTuple_GET_SIZE(<PyObject*>items)):
        if PyObject_GC_IsTracked(PyTuple_GET_ITEM(<PyObject*>items, k)):
            return items
    PyObject_GC_UnTrack(<PyObject*>items)
    return items


cdef inline bint _is_word_start(Py_UCS4 c):
    return (c >= 'a' and c <= 'z') or (c >= 'A' and c <= 'Z') or c == '_'


cdef inline bint _is_word_char(Py_UCS4 c):
    return (c >= 'a' and c <= 'z') or (c >= 'A' and c <= 'Z') or c == '_' \
        or (c >= '0' and c <= '9')


cdef inline bint _is_digit(Py_UCS4 c):
    return c >= '0' and c <= '9'


@cython.final
cdef class _Reader:
    cdef object text
    cdef const void* data
    cdef int kind
    cdef Py_ssize_t n
    cdef Py_ssize_t i               # where scanning continues
    cdef Py_ssize_t line            # line of the character at i
    cdef Py_ssize_t line_start      # index of the first character of that line
    cdef object line_number         # `line` as an int object, made once per line used
    cdef int depth                  # open ( and [ : newlines inside are white space
    cdef int nesting                # values being read inside one another

    # the current token
    cdef int tok
    cdef Py_ssize_t tok_column
    cdef object tok_value           # NAME: its interned text; STRING, NUMBER: the value

    # the value last read by read_value() and where it starts
    cdef object value_pos

    cdef list stack                 # items of the tuples being built, innermost last
    cdef dict names                 # text -> Name, one object per distinct name

    # NAME texts seen so far, interned by a hash of their characters, so a name
    # that appears 100,000 times is one str object and costs no allocation
    cdef uint64_t* word_hashes
    cdef PyObject** word_objects
    cdef Py_ssize_t word_mask
    cdef Py_ssize_t word_count
    cdef list word_owner            # owns the references in word_objects

    def __cinit__(self, str text):
        self.text = text
        self.data = PyUnicode_DATA(text)
        self.kind = PyUnicode_KIND(text)
        self.n = PyUnicode_GET_LENGTH(text)
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.line_number = None
        self.depth = 0
        self.nesting = 0
        self.stack = []
        self.names = {}
        self.word_owner = []
        self.word_count = 0
        self.word_mask = 1023
        self.word_hashes = <uint64_t*>PyMem_Malloc((self.word_mask + 1) * sizeof(uint64_t))
        self.word_objects = <PyObject**>PyMem_Malloc((self.word_mask + 1) * sizeof(PyObject*))
        if self.word_hashes == NULL or self.word_objects == NULL:
            raise MemoryError()
        memset(self.word_objects, 0, (self.word_mask + 1) * sizeof(PyObject*))

    def __dealloc__(self):
        PyMem_Free(self.word_hashes)
        PyMem_Free(self.word_objects)

    # -- characters -----------------------------------------------------------------

    cdef inline Py_UCS4 ch(self, Py_ssize_t i) noexcept:
        if i >= self.n:
            return EOF_CHAR
        if self.kind == 1:
            return (<const Py_UCS1*>self.data)[i]
        if self.kind == 2:
            return (<const Py_UCS2*>self.data)[i]
        return (<const Py_UCS4*>self.data)[i]

    cdef inline bint at(self, Py_ssize_t i, const char* word, Py_ssize_t length) noexcept:
        cdef Py_ssize_t k
        for k in range(length):
            if self.ch(i + k) != <Py_UCS4>word[k]:
                return False
        return True

    cdef int fail(self) except -1:
        raise ReadError("not models.mp")

    # -- tokens ---------------------------------------------------------------------

    cdef int advance(self, int mode) except -1:
        """Scan the next token into tok/tok_column/tok_value, lexing words by mode."""
        cdef Py_ssize_t i = self.i
        cdef Py_UCS4 c
        while True:
            c = self.ch(i)
            if c == ' ' or c == '\t' or c == '\r' or c == '\f':
                i += 1
            elif c == '\n':
                i += 1
                self.line += 1
                self.line_start = i
                self.line_number = None
                if self.depth == 0:
                    self.i = i
                    self.tok = T_NL
                    return 0
            elif c == '#' or (c == '/' and self.ch(i + 1) == '/'):
                i += 1
                while True:
                    c = self.ch(i)
                    if c == '\n' or c == EOF_CHAR:
                        break
                    i += 1
            else:
                break
        self.tok_column = i - self.line_start + 1
        if _is_word_start(c):
            return self.scan_word(i, mode)
        if c == '"':
            return self.scan_string(i)
        if _is_digit(c) or c == '-':
            return self.scan_number(i)
        if c == '(':
            self.tok = T_LPAR
            self.depth += 1
        elif c == ')':
            self.tok = T_RPAR
            if self.depth > 0:
                self.depth -= 1
        elif c == '[':
            self.tok = T_LSQB
            self.depth += 1
        elif c == ']':
            self.tok = T_RSQB
            if self.depth > 0:
                self.depth -= 1
        elif c == ',':
            self.tok = T_COMMA
        elif c == '=':
            self.tok = T_EQUAL
        elif c == '.':
            self.tok = T_DOT
        elif c == ';':
            self.tok = T_SEMI
        elif c == '{':
            self.tok = T_LBRACE
        elif c == '}':
            self.tok = T_RBRACE
        elif c == ':':
            self.tok = T_COLON
        elif c == EOF_CHAR:
            self.tok = T_EOF
            self.i = i
            return 0
        else:
            return self.fail()
        self.i = i + 1
        return 0

    cdef int scan_word(self, Py_ssize_t i, int mode) except -1:
        cdef Py_ssize_t start = i
        cdef Py_ssize_t length
        cdef uint64_t h = <uint64_t>14695981039346656037ULL
        cdef Py_UCS4 c
        if mode == M_DECL:
            if self.at(i, b"model", 5) and not _is_word_char(self.ch(i + 5)):
                self.tok = T_MODEL
                self.i = i + 5
            elif self.at(i, b"enum", 4) and not _is_word_char(self.ch(i + 4)):
                self.tok = T_ENUM
                self.i = i + 4
            else:
                return self.fail()
            return 0
        if mode == M_EXTENDS:
            if not self.at(i, b"extends", 7) or _is_word_char(self.ch(i + 7)):
                return self.fail()
            self.tok = T_EXTENDS
            self.i = i + 7
            return 0
        while True:
            c = self.ch(i)
            if not _is_word_char(c):
                break
            h = (h ^ <uint64_t>c) * <uint64_t>1099511628211ULL
            i += 1
        self.i = i
        length = i - start
        if mode == M_VALUE and (length == 4 or length == 5):
            if length == 4 and self.at(start, b"true", 4):
                self.tok = T_TRUE
                return 0
            if length == 4 and self.at(start, b"null", 4):
                self.tok = T_NULL
                return 0
            if length == 5 and self.at(start, b"false", 5):
                self.tok = T_FALSE
                return 0
        elif mode == M_SEP and length >= 4 and length <= 7:
            if length == 4 and self.at(start, b"enum", 4):
                self.tok = T_ENUM
                return 0
            if length == 5 and self.at(start, b"model", 5):
                self.tok = T_MODEL
                return 0
            if length == 7 and self.at(start, b"extends", 7):
                self.tok = T_EXTENDS
                return 0
        self.tok = T_NAME
        self.tok_value = self.intern(start, length, h)
        return 0

    cdef object intern(self, Py_ssize_t start, Py_ssize_t length, uint64_t h):
        """The str of text[start:start + length] (ASCII), one object per distinct text."""
        cdef Py_ssize_t slot = <Py_ssize_t>(h & <uint64_t>self.word_mask)
        cdef PyObject* found
        cdef const Py_UCS1* chars
        cdef Py_ssize_t k
        while True:
            found = self.word_objects[slot]
            if found == NULL:
                break
            if self.word_hashes[slot] == h and PyUnicode_GET_LENGTH(<object>found) == length:
                chars = <const Py_UCS1*>PyUnicode_DATA(<object>found)
                for k in range(length):
                    if self.ch(start + k) != chars[k]:
                        break
                else:
                    return <object>found
            slot = (slot + 1) & self.word_mask
        word = PyUnicode_Substring(self.text, start, start + length)
        self.word_owner.append(word)
        self.word_hashes[slot] = h
        self.word_objects[slot] = <PyObject*>word
        self.word_count += 1
        if self.word_count * 2 > self.word_mask:
            self.grow_words()
        return word

    cdef int grow_words(self) except -1:
        cdef Py_ssize_t old_size = self.word_mask + 1
        cdef Py_ssize_t size = old_size * 4
        cdef uint64_t* old_hashes = self.word_hashes
        cdef PyObject** old_objects = self.word_objects
        cdef Py_ssize_t k, slot
        hashes = <uint64_t*>PyMem_Malloc(size * sizeof(uint64_t))
        objects = <PyObject**>PyMem_Malloc(size * sizeof(PyObject*))
        if hashes == NULL or objects == NULL:
            PyMem_Free(hashes)
            PyMem_Free(objects)
            raise MemoryError()
        memset(objects, 0, size * sizeof(PyObject*))
        for k in range(old_size):
            if old_objects[k] != NULL:
                slot = <Py_ssize_t>(old_hashes[k] & <uint64_t>(size - 1))
                while objects[slot] != NULL:
                    slot = (slot + 1) & (size - 1)
                hashes[slot] = old_hashes[k]
                objects[slot] = old_objects[k]
        self.word_hashes = hashes
        self.word_objects = objects
        self.word_mask = size - 1
        PyMem_Free(old_hashes)
        PyMem_Free(old_objects)
        return 0

    cdef int scan_string(self, Py_ssize_t i) except -1:
        # "(?:[^"\\\n]|\\.)*" ; a backslash escapes " and \ only, and keeps any other
        cdef Py_ssize_t start = i + 1
        cdef bint escaped = False
        cdef Py_UCS4 c
        i += 1
        while True:
            c = self.ch(i)
            if c == '"':
                break
            if c == '\\':
                c = self.ch(i + 1)
                if c == '\n' or c == EOF_CHAR:
                    return self.fail()
                escaped = True
                i += 2
            elif c == '\n' or c == EOF_CHAR:
                return self.fail()
            else:
                i += 1
        self.i = i + 1
        self.tok = T_STRING
        if escaped:
            self.tok_value = self.unescape(start, i)
        else:
            self.tok_value = PyUnicode_Substring(self.text, start, i)
        return 0

    cdef object unescape(self, Py_ssize_t start, Py_ssize_t end):
        cdef Py_UCS4* out = <Py_UCS4*>PyMem_Malloc((end - start + 1) * sizeof(Py_UCS4))
        cdef Py_ssize_t length = 0
        cdef Py_ssize_t i = start
        cdef Py_UCS4 c, following
        if out == NULL:
            raise MemoryError()
        try:
            while i < end:
                c = self.ch(i)
                if c == '\\':
                    following = self.ch(i + 1)
                    if following == '"' or following == '\\':
                        out[length] = following
                    else:
                        out[length] = c
                        out[length + 1] = following
                        length += 1
                    length += 1
                    i += 2
                else:
                    out[length] = c
                    length += 1
                    i += 1
            return PyUnicode_FromKindAndData(4, out, length)
        finally:
            PyMem_Free(out)

    cdef int scan_number(self, Py_ssize_t i) except -1:
        # -?[0-9]+(\.[0-9]+)?
        cdef Py_ssize_t start = i
        cdef Py_ssize_t digits_start
        cdef long long value = 0
        cdef Py_ssize_t k
        cdef bint negative = False
        if self.ch(i) == '-':
            negative = True
            i += 1
            if not _is_digit(self.ch(i)):
                return self.fail()
        digits_start = i
        while _is_digit(self.ch(i)):
            i += 1
        if i - digits_start <= 18:
            for k in range(digits_start, i):
                value = value * 10 + (<long long>self.ch(k) - 48)
        self.tok = T_NUMBER
        if self.ch(i) == '.' and _is_digit(self.ch(i + 1)):
            i += 2
            while _is_digit(self.ch(i)):
                i += 1
            # Exact: a DecimalField's default keeps every digit (raw.number does the same).
            self.tok_value = Decimal(PyUnicode_Substring(self.text, start, i))
        elif i - digits_start > 18:
            self.tok_value = int(PyUnicode_Substring(self.text, start, i))
        else:
            self.tok_value = PyLong_FromLongLong(-value if negative else value)
        self.i = i
        return 0

    cdef inline tuple pos(self):
        """(line, column) of the current token."""
        if self.line_number is None:
            self.line_number = PyLong_FromSsize_t(self.line)
        return _settled((self.line_number, PyLong_FromSsize_t(self.tok_column)))

    cdef inline int expect(self, int kind) except -1:
        if self.tok != kind:
            return self.fail()
        return 0

    cdef tuple pop_tuple(self, Py_ssize_t start):
        """The stack's items from start on, as a tuple; they leave the stack."""
        cdef list stack = self.stack
        cdef Py_ssize_t count = PyList_GET_SIZE(stack) - start
        cdef Py_ssize_t k
        cdef tuple items = PyTuple_New(count)
        for k in range(count):
            item = <object>PyList_GET_ITEM(stack, start + k)
            Py_INCREF(item)
            PyTuple_SET_ITEM(items, k, item)
        del stack[start:]
        return _settled(items)

    # -- declarations ---------------------------------------------------------------

    cdef list read_file(self):
        cdef list declarations = []
        self.advance(M_DECL)
        while True:
            if self.tok == T_NL or self.tok == T_SEMI:
                self.advance(M_SEP)
            elif self.tok == T_ENUM:
                declarations.append(self.read_enum())
            elif self.tok == T_MODEL:
                declarations.append(self.read_model())
            elif self.tok == T_EOF:
                return declarations
            else:
                self.fail()

    cdef object read_enum(self):
        # "enum" NAME "{" _member_sep* (enum_member _member_sep+)* enum_member? "}"
        cdef Py_ssize_t start = PyList_GET_SIZE(self.stack)
        self.advance(M_PLAIN)
        self.expect(T_NAME)
        name = self.tok_value
        pos = self.pos()
        self.advance(M_PLAIN)
        self.expect(T_LBRACE)
        self.advance(M_PLAIN)
        while True:
            if self.tok == T_NL or self.tok == T_COMMA:
                self.advance(M_PLAIN)
                continue
            if self.tok == T_RBRACE:
                break
            self.expect(T_NAME)
            key = self.tok_value
            key_pos = self.pos()
            value = None
            self.advance(M_PLAIN)
            if self.tok == T_EQUAL:
                self.advance(M_PLAIN)
                self.expect(T_STRING)
                value = self.tok_value
                self.advance(M_PLAIN)
            self.stack.append(_settled((key, value, key_pos)))
            if self.tok != T_NL and self.tok != T_COMMA and self.tok != T_RBRACE:
                self.fail()
        members = self.pop_tuple(start)
        self.advance(M_DECL)
        return RawEnum(name, pos, members)

    cdef object read_model(self):
        # "model" NAME "extends" NAME "{" _sep* (statement _sep+)* statement? "}"
        # statement: field_name "=" value; field_name: NAME | MODEL | ENUM | EXTENDS
        cdef Py_ssize_t start = PyList_GET_SIZE(self.stack)
        self.advance(M_PLAIN)
        self.expect(T_NAME)
        name = self.tok_value
        pos = self.pos()
        self.advance(M_EXTENDS)
        self.expect(T_EXTENDS)
        self.advance(M_PLAIN)
        self.expect(T_NAME)
        base = self.tok_value
        base_pos = self.pos()
        self.advance(M_PLAIN)
        self.expect(T_LBRACE)
        self.advance(M_SEP)
        while True:
            if self.tok == T_NL or self.tok == T_SEMI:
                self.advance(M_SEP)
                continue
            if self.tok == T_RBRACE:
                break
            if self.tok == T_NAME:
                field = self.tok_value
            elif self.tok == T_MODEL:
                field = "model"
            elif self.tok == T_ENUM:
                field = "enum"
            elif self.tok == T_EXTENDS:
                field = "extends"
            else:
                self.fail()
            field_pos = self.pos()
            self.advance(M_PLAIN)
            self.expect(T_EQUAL)
            self.advance(M_VALUE)
            value = self.read_value()
            self.stack.append(_settled((field, field_pos, value, self.value_pos)))
            if self.tok != T_NL and self.tok != T_SEMI and self.tok != T_RBRACE:
                self.fail()
        statements = self.pop_tuple(start)
        self.advance(M_DECL)
        return RawModel(name, pos, base, base_pos, statements)

    # -- values ---------------------------------------------------------------------

    cdef object read_value(self):
        """The value starting at the current token (lexed in M_VALUE); sets value_pos."""
        cdef int tok = self.tok
        if tok == T_NAME:
            name = self.tok_value
            pos = self.pos()
            self.advance(M_PLAIN)
            return self.read_after_name(name, pos)
        self.value_pos = self.pos()
        if tok == T_STRING or tok == T_NUMBER:
            value = self.tok_value
            self.advance(M_PLAIN)
            return value
        if tok == T_TRUE:
            self.advance(M_PLAIN)
            return True
        if tok == T_FALSE:
            self.advance(M_PLAIN)
            return False
        if tok == T_NULL:
            self.advance(M_PLAIN)
            return None
        if tok == T_LSQB:
            pos = self.value_pos
            items = self.read_items(T_RSQB)
            self.value_pos = pos
            return ListValue(items)
        if tok == T_LPAR:
            pos = self.value_pos
            items = self.read_items(T_RPAR)
            self.value_pos = pos
            return TupleValue(items)
        if tok == T_LBRACE:
            pos = self.value_pos
            items = self.read_pairs()
            self.value_pos = pos
            return ObjectValue(items)
        self.fail()

    cdef object read_after_name(self, object name, tuple pos):
        """A call or a (dotted) name whose first NAME has been read; sets value_pos."""
        cdef list parts
        if self.tok == T_LPAR:
            args = self.read_arguments()
            self.value_pos = pos
            return _make_call(name, pos, args)
        if self.tok == T_DOT:
            parts = [name]
            while self.tok == T_DOT:
                self.advance(M_PLAIN)
                self.expect(T_NAME)
                parts.append(self.tok_value)
                self.advance(M_PLAIN)
            name = ".".join(parts)
        self.value_pos = pos
        found = self.names.get(name)
        if found is None:
            found = self.names[name] = Name(name)
        return found

    cdef tuple read_items(self, int closer):
        """[ value ("," value)* ","? ] up to closer; the opener is the current token."""
        cdef Py_ssize_t start = PyList_GET_SIZE(self.stack)
        self.enter()
        self.advance(M_VALUE)
        if self.tok != closer:
            while True:
                value = self.read_value()
                self.stack.append(_settled((value, self.value_pos)))
                if self.tok == T_COMMA:
                    self.advance(M_VALUE)
                    if self.tok == closer:
                        break
                elif self.tok == closer:
                    break
                else:
                    self.fail()
        self.advance(M_PLAIN)
        self.nesting -= 1
        return self.pop_tuple(start)

    cdef tuple read_pairs(self):
        """{ [STRING ":" value ("," STRING ":" value)* ","?] }; the { is the current token."""
        cdef Py_ssize_t start = PyList_GET_SIZE(self.stack)
        self.enter()
        self.advance(M_VALUE)
        if self.tok != T_RBRACE:
            while True:
                self.expect(T_STRING)
                key = self.tok_value
                pos = self.pos()
                self.advance(M_PLAIN)
                self.expect(T_COLON)
                self.advance(M_VALUE)
                value = self.read_value()
                self.stack.append(_settled((key, value, pos)))
                if self.tok == T_COMMA:
                    self.advance(M_VALUE)
                    if self.tok == T_RBRACE:
                        break
                elif self.tok == T_RBRACE:
                    break
                else:
                    self.fail()
        self.advance(M_PLAIN)
        self.nesting -= 1
        return self.pop_tuple(start)

    cdef tuple read_arguments(self):
        """( [argument ("," argument)* ","?] ); the ( is the current token."""
        cdef Py_ssize_t start = PyList_GET_SIZE(self.stack)
        self.enter()
        self.advance(M_VALUE)
        if self.tok != T_RPAR:
            while True:
                if self.tok == T_NAME:
                    name = self.tok_value
                    pos = self.pos()
                    self.advance(M_PLAIN)
                    if self.tok == T_EQUAL:
                        self.advance(M_VALUE)
                        value = self.read_value()
                        self.stack.append(_settled((name, value, pos)))
                    else:
                        value = self.read_after_name(name, pos)
                        self.stack.append(_settled((None, value, self.value_pos)))
                elif self.tok == T_NULL:
                    # `null` is a value, and also a keyword argument's name
                    pos = self.pos()
                    self.advance(M_PLAIN)
                    if self.tok == T_EQUAL:
                        self.advance(M_VALUE)
                        value = self.read_value()
                        self.stack.append(_settled(("null", value, pos)))
                    else:
                        self.stack.append(_settled((None, None, pos)))
                else:
                    value = self.read_value()
                    self.stack.append(_settled((None, value, self.value_pos)))
                if self.tok == T_COMMA:
                    self.advance(M_VALUE)
                    if self.tok == T_RPAR:
                        break
                elif self.tok == T_RPAR:
                    break
                else:
                    self.fail()
        self.advance(M_PLAIN)
        self.nesting -= 1
        return self.pop_tuple(start)

    cdef inline int enter(self) except -1:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            return self.fail()
        return 0


def read(str text not None, Py_ssize_t first_line=1):
    """Parse models.mp text into the raw tree (see raw.py); ReadError if it is not valid.
    ``first_line``: the line the text starts on, when it is a part of a file cut at a
    line's start (positions are then the file's)."""
    reader = _Reader(text)
    reader.line = first_line
    if not gc.isenabled():
        return reader.read_file()
    # The tree is a few hundred thousand new objects and no cycles; letting the
    # cyclic collector walk them again and again while they are made costs ten
    # times the reading.
    gc.disable()
    try:
        return reader.read_file()
    finally:
        gc.enable()


# Where each key of a new-form field definition goes in a Field (see schema.Field);
# "default" also sets has_default (slot 6). Other keys are ignored, as .get() ignores them.
cdef dict _FIELD_SLOTS = {"name": 0, "type": 1, "column": 2, "null": 3, "unique": 4, "primary_key": 5,
                          "default": 7, "max_length": 8, "max_digits": 9, "decimal_places": 10,
                          "auto_now": 11, "auto_now_add": 12, "enum": 13, "to": 14, "on_delete": 15,
                          "fk_name": 16, "key_name": 17, "deferrable": 18, "db_default": 19}
cdef list _FIELD_DEFAULTS = [None, None, None, False, False, False, False, None, None, None, None,
                             False, False, None, None, None, None, None, None, None]


def new_form_fields(list raw_fields, field_class):
    """The compiled twin of mfcore.snapshot.new_form_fields (loading a snapshot's
    fields); it must behave exactly as that function does. One pass over each
    definition's few keys instead of a lookup for each of the nineteen attributes."""
    cdef list fields = []
    cdef list values
    cdef object doc, key, value, slot
    cdef dict d
    cdef bint has_column
    cdef Py_ssize_t index
    for doc in raw_fields:
        if type(doc) is not dict:
            return None
        d = <dict>doc
        values = _FIELD_DEFAULTS[:]
        has_column = False
        for key, value in d.items():
            slot = _FIELD_SLOTS.get(key)
            if slot is None:
                if key == "params" or key == "kwargs":
                    return None
                continue
            index = <Py_ssize_t>slot
            values[index] = value
            if index == 7:
                values[6] = True
            elif index == 2:
                has_column = True
        if not has_column:
            values[2] = values[0]
        if type(values[0]) is not str or type(values[1]) is not str or type(values[2]) is not str:
            return None
        if values[7] is not None and values[1] == "DecimalField":
            values[7] = exact_decimal(values[7])
        fields.append(tuple.__new__(field_class, values))
    return tuple(fields)
