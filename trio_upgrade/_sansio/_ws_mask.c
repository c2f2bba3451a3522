/* WebSocket masking (RFC 6455 section 5.3), compiled: an optional speedup.
 *
 * Built by setup.py when a C compiler is at hand; without it the package
 * installs and runs on the pure-Python masking of _ws_frames.py, which the
 * tests hold to the same bytes. Two functions:
 *
 *   mask(key, data) -> bytes
 *       data XOR the 4-byte key repeated.
 *   frame(head, key, data) -> bytes
 *       head + key + mask(key, data), built in one allocation: a client
 *       frame's bytes without the copy a join of three parts would make.
 *
 * data may be any contiguous buffer (bytes, bytearray, memoryview). The
 * XOR runs eight bytes at a time; memcpy for the loads and stores keeps it
 * free of alignment assumptions, and compilers turn it into plain moves.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static void
xor_into(unsigned char *out, const unsigned char *in, Py_ssize_t size,
         const unsigned char *key)
{
    uint64_t wide;
    unsigned char lanes[8];
    Py_ssize_t i = 0;

    memcpy(lanes, key, 4);
    memcpy(lanes + 4, key, 4);
    memcpy(&wide, lanes, 8);
    for (; i + 32 <= size; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, in + i, 8);
        memcpy(&b, in + i + 8, 8);
        memcpy(&c, in + i + 16, 8);
        memcpy(&d, in + i + 24, 8);
        a ^= wide;
        b ^= wide;
        c ^= wide;
        d ^= wide;
        memcpy(out + i, &a, 8);
        memcpy(out + i + 8, &b, 8);
        memcpy(out + i + 16, &c, 8);
        memcpy(out + i + 24, &d, 8);
    }
    for (; i + 8 <= size; i += 8) {
        uint64_t a;
        memcpy(&a, in + i, 8);
        a ^= wide;
        memcpy(out + i, &a, 8);
    }
    /* i is a multiple of 8 here, so the key's phase is i & 3 == 0. */
    for (; i < size; i++) {
        out[i] = in[i] ^ key[i & 3];
    }
}

static int
check_key(const Py_buffer *key)
{
    if (key->len != 4) {
        PyErr_Format(PyExc_ValueError,
                     "a masking key is 4 bytes, not %zd", key->len);
        return -1;
    }
    return 0;
}

static PyObject *
build(const Py_buffer *head, const Py_buffer *key, const Py_buffer *data,
      int with_key)
{
    Py_ssize_t prefix = head->len + (with_key ? 4 : 0);
    PyObject *result;
    unsigned char *out;

    if (data->len > PY_SSIZE_T_MAX - prefix) {
        return PyErr_NoMemory();
    }
    result = PyBytes_FromStringAndSize(NULL, prefix + data->len);
    if (result == NULL) {
        return NULL;
    }
    out = (unsigned char *)PyBytes_AS_STRING(result);
    if (head->len) {
        memcpy(out, head->buf, (size_t)head->len);
    }
    if (with_key) {
        memcpy(out + head->len, key->buf, 4);
    }
    xor_into(out + prefix, (const unsigned char *)data->buf, data->len,
             (const unsigned char *)key->buf);
    return result;
}

PyDoc_STRVAR(mask_doc,
"mask(key, data, /)\n--\n\n"
"``data`` XOR the repeated 4-byte ``key`` (RFC 6455 section 5.3).");

/* The arguments as buffers: the first ``count`` of ``args``, or an error. */
static int
get_buffers(const char *name, PyObject *const *args, Py_ssize_t nargs,
            Py_ssize_t count, Py_buffer *views)
{
    Py_ssize_t i;

    if (nargs != count) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)",
                     name, count, nargs);
        return -1;
    }
    for (i = 0; i < count; i++) {
        if (PyObject_GetBuffer(args[i], &views[i], PyBUF_SIMPLE) < 0) {
            while (i--) {
                PyBuffer_Release(&views[i]);
            }
            return -1;
        }
    }
    return 0;
}

static PyObject *
mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer views[2];
    Py_buffer none = {0};
    PyObject *result = NULL;

    (void)module;
    if (get_buffers("mask", args, nargs, 2, views) < 0) {
        return NULL;
    }
    if (check_key(&views[0]) == 0) {
        result = build(&none, &views[0], &views[1], 0);
    }
    PyBuffer_Release(&views[0]);
    PyBuffer_Release(&views[1]);
    return result;
}

PyDoc_STRVAR(frame_doc,
"frame(head, key, data, /)\n--\n\n"
"``head + key + mask(key, data)`` in one new bytes object.");

static PyObject *
frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer views[3];
    PyObject *result = NULL;

    (void)module;
    if (get_buffers("frame", args, nargs, 3, views) < 0) {
        return NULL;
    }
    if (check_key(&views[1]) == 0) {
        result = build(&views[0], &views[1], &views[2], 1);
    }
    PyBuffer_Release(&views[0]);
    PyBuffer_Release(&views[1]);
    PyBuffer_Release(&views[2]);
    return result;
}

static PyMethodDef methods[] = {
    {"mask", (PyCFunction)(void (*)(void))mask, METH_FASTCALL, mask_doc},
    {"frame", (PyCFunction)(void (*)(void))frame, METH_FASTCALL, frame_doc},
    {NULL, NULL, 0, NULL},
};

#ifdef Py_mod_multiple_interpreters
static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};
#else
static PyModuleDef_Slot slots[] = {
    {0, NULL},
};
#endif

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "trio_upgrade._sansio._ws_mask",
    "WebSocket masking, compiled (an optional speedup of _ws_frames).",
    0,
    methods,
    slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__ws_mask(void)
{
    return PyModuleDef_Init(&module_def);
}
