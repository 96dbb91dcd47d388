/*
 * Capsule's CPython 3.11 guest: a wasm32-wasip1 reactor that embeds libpython and implements the
 * guest ABI of guest-images/ABI.md.
 *
 *   wizer.initialize  build time: start CPython, import the `capsule` SDK, run the user's module
 *                     (source on stdin) and print the task table on stdout. Wizer snapshots the result.
 *   run               run time: canonical-ABI `run(task-name, args-json) -> result<string, task-error>`.
 *
 * Everything Python-level lives in the SDK (capsule/_guest.py); this file only moves bytes across
 * the ABI and resets the wasi-libc caches that the snapshot froze.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* From the wasi-libc that Rust ships (wasi-sdk 30); Debian's 2022 headers do not declare them. */
extern void __wasilibc_reset_preopens(void);
extern void __wasilibc_deinitialize_environ(void);

/* The stdlib layer's one file (guest-images/python/pack_stdlib.py), imported with zipimport. */
#define STDLIB_ZIP L"/usr/local/lib/python3.11/stdlib.zip"

/* ---- reproducible snapshots ------------------------------------------------------------------
 * During init the interpreter stats and lists the stdlib layer. The host reports inode, device,
 * access and change times that differ with every unpacking of the layer, and copies of them stay
 * in memory (stat results, freed blocks, stack) that Wizer snapshots. Linked with
 * `--wrap=__wasi_{fd_filestat_get,path_filestat_get,fd_readdir}`, these wrappers scrub those
 * fields while `scrub_metadata` is set (init only); mtimes are already fixed by the layer store. */
#include <stddef.h>
#include <wasi/api.h>

static int scrub_metadata = 0;

__wasi_errno_t __real___wasi_fd_filestat_get(__wasi_fd_t fd, __wasi_filestat_t *out);
__wasi_errno_t __real___wasi_path_filestat_get(__wasi_fd_t fd, __wasi_lookupflags_t flags, const char *path,
                                               __wasi_filestat_t *out);
__wasi_errno_t __real___wasi_fd_readdir(__wasi_fd_t fd, uint8_t *buf, __wasi_size_t len, __wasi_dircookie_t cookie,
                                        __wasi_size_t *used);

static void scrub_filestat(__wasi_filestat_t *stat) {
    stat->dev = 0;
    stat->ino = 0;
    stat->atim = stat->mtim;
    stat->ctim = stat->mtim;
}

__wasi_errno_t __wrap___wasi_fd_filestat_get(__wasi_fd_t fd, __wasi_filestat_t *out) {
    __wasi_errno_t error = __real___wasi_fd_filestat_get(fd, out);
    if (error == 0 && scrub_metadata) scrub_filestat(out);
    return error;
}

__wasi_errno_t __wrap___wasi_path_filestat_get(__wasi_fd_t fd, __wasi_lookupflags_t flags, const char *path,
                                               __wasi_filestat_t *out) {
    __wasi_errno_t error = __real___wasi_path_filestat_get(fd, flags, path, out);
    if (error == 0 && scrub_metadata) scrub_filestat(out);
    return error;
}

/* Directory entries carry inode numbers: zero them (the entries are otherwise unchanged). */
__wasi_errno_t __wrap___wasi_fd_readdir(__wasi_fd_t fd, uint8_t *buf, __wasi_size_t len, __wasi_dircookie_t cookie,
                                        __wasi_size_t *used) {
    __wasi_errno_t error = __real___wasi_fd_readdir(fd, buf, len, cookie, used);
    if (error != 0 || !scrub_metadata) return error;
    size_t at = 0;
    while (at < *used) {
        /* The last entry may be cut off by the buffer's end: scrub whatever part of d_ino is there. */
        size_t ino_at = at + offsetof(__wasi_dirent_t, d_ino);
        if (ino_at < *used) {
            size_t n = *used - ino_at < sizeof(__wasi_inode_t) ? *used - ino_at : sizeof(__wasi_inode_t);
            memset(buf + ino_at, 0, n);
        }
        if (at + sizeof(__wasi_dirent_t) > *used) break;
        __wasi_dirent_t entry;
        memcpy(&entry, buf + at, sizeof entry);
        at += sizeof entry + entry.d_namlen;
    }
    return error;
}

/* ---- `_capsule_host`: what the SDK needs from C ------------------------------------------ */

typedef struct {
    char *ptr;
    size_t len;
} abi_string;

/* `result<string, task-error>`: discriminant at 0, payload at 4 (see ABI.md). */
typedef struct {
    uint8_t is_err;
    abi_string strings[3];
} run_return;

/* The `call-task` import: runs a sub-task in a fresh instance, under its manifest policy narrowed
   by this task's. The host writes the result (strings allocated with cabi_realloc) to `ret`. */
__attribute__((import_module("$root"), import_name("call-task")))
extern void capsule_import_call_task(const char *name, size_t name_len, const char *args,
                                     size_t args_len, run_return *ret);

/* Strings the host allocated through cabi_realloc; an empty one is not an allocation. */
static void free_abi_string(abi_string s) {
    if (s.len) free(s.ptr);
}

/* Outgoing HTTP over wasi:http, from the shared guest HTTP client (guest-images/http-client, a
   Rust static library): one request and its redirects, JSON in and out, the same result layout as
   `call-task`; its strings are freed with capsule_http_free. The runner checks every request
   against the task's `allowed_hosts`. */
extern void capsule_http_fetch(const char *request, size_t request_len, run_return *ret);
extern void capsule_http_free(char *ptr, size_t len);

static void free_http_string(abi_string s) { capsule_http_free(s.ptr, s.len); }

/* A `result<string, task-error>` as (True, text) or (False, (error_type, message, traceback));
   frees the strings with `release`. */
static PyObject *import_outcome(run_return *ret, void (*release)(abi_string)) {
    PyObject *outcome;
    if (!ret->is_err) {
        outcome = Py_BuildValue("(Os#)", Py_True, ret->strings[0].len ? ret->strings[0].ptr : "",
                                (Py_ssize_t)ret->strings[0].len);
        release(ret->strings[0]);
    } else {
        const char *text[3];
        for (int i = 0; i < 3; i++) text[i] = ret->strings[i].len ? ret->strings[i].ptr : "";
        outcome = Py_BuildValue("(O(s#s#s#))", Py_False, text[0], (Py_ssize_t)ret->strings[0].len, text[1],
                                (Py_ssize_t)ret->strings[1].len, text[2], (Py_ssize_t)ret->strings[2].len);
        for (int i = 0; i < 3; i++) release(ret->strings[i]);
    }
    return outcome;
}

/* call_task(name, args_json) -> (True, result_json) | (False, (error_type, message, traceback)) */
static PyObject *host_call_task(PyObject *self, PyObject *args) {
    (void)self;
    const char *name, *json;
    Py_ssize_t name_len, json_len;
    if (!PyArg_ParseTuple(args, "s#s#", &name, &name_len, &json, &json_len)) return NULL;
    run_return ret;
    memset(&ret, 0, sizeof ret);
    capsule_import_call_task(name, (size_t)name_len, json, (size_t)json_len, &ret);
    return import_outcome(&ret, free_abi_string);
}

/* http_fetch(request_json) -> (True, response_json) | (False, (error_type, message, traceback)) */
static PyObject *host_http_fetch(PyObject *self, PyObject *args) {
    (void)self;
    const char *request;
    Py_ssize_t request_len;
    if (!PyArg_ParseTuple(args, "s#", &request, &request_len)) return NULL;
    run_return ret;
    memset(&ret, 0, sizeof ret);
    capsule_http_fetch(request, (size_t)request_len, &ret);
    return import_outcome(&ret, free_http_string);
}

extern char **environ;

/* The environment as granted for this run. wasi-libc re-reads it lazily after
   __wasilibc_deinitialize_environ(); getenv() triggers that. */
static PyObject *host_environ(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    (void)getenv("PATH");
    PyObject *env = PyDict_New();
    if (!env) return NULL;
    for (char **entry = environ; entry && *entry; entry++) {
        const char *eq = strchr(*entry, '=');
        if (!eq) continue;
        PyObject *key = PyUnicode_DecodeFSDefaultAndSize(*entry, eq - *entry);
        PyObject *value = PyUnicode_DecodeFSDefault(eq + 1);
        if (!key || !value || PyDict_SetItem(env, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(env);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return env;
}

static PyMethodDef host_methods[] = {
    {"environ", host_environ, METH_NOARGS, "The environment granted to this run."},
    {"call_task", host_call_task, METH_VARARGS, "Run a sub-task in a fresh instance."},
    {"http_fetch", host_http_fetch, METH_VARARGS, "Make an HTTP request through the host."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef host_module = {PyModuleDef_HEAD_INIT, "_capsule_host", NULL, -1, host_methods};

static PyObject *init_host_module(void) { return PyModule_Create(&host_module); }

/* The SDK's entry points, looked up once at init and kept in the snapshot. */
static PyObject *sdk_run = NULL;

static void die(const char *what) {
    fprintf(stderr, "capsule python guest: %s\n", what);
    if (PyErr_Occurred()) PyErr_Print();
    fflush(stderr);
    abort();
}

static void start_interpreter(void) {
    if (PyImport_AppendInittab("_capsule_host", init_host_module) < 0) die("cannot register _capsule_host");
    /* UTF-8 mode: the sandbox has no locale, and without it stdio and file names would be ASCII
       (print("é") raising UnicodeEncodeError). */
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    PyStatus pre = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(pre)) Py_ExitStatusException(pre);
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    /* Snapshot hygiene: a seed drawn at init would be shared by every run, and CPython cannot change
       its str hash secret once strings are interned, so it is fixed here (reproducible builds). */
    config.use_hash_seed = 1;
    config.hash_seed = 0;
    config.write_bytecode = 0;
    config.site_import = 0;
    config.install_signal_handlers = 0;
    config.buffered_stdio = 1;
    PyStatus st = PyConfig_SetString(&config, &config.home, L"/usr/local");
    if (PyStatus_Exception(st)) goto fail;
    st = PyConfig_SetString(&config, &config.program_name, L"python3");
    if (PyStatus_Exception(st)) goto fail;
    config.module_search_paths_set = 1;
    st = PyWideStringList_Append(&config.module_search_paths, STDLIB_ZIP);
    if (PyStatus_Exception(st)) goto fail;
    st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) Py_ExitStatusException(st);
    return;
fail:
    PyConfig_Clear(&config);
    Py_ExitStatusException(st);
}

/* Reads all of stdin (the user's module source). */
static PyObject *read_stdin(void) {
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    if (!buf) die("out of memory reading the task source");
    while ((n = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (!bigger) die("out of memory reading the task source");
            buf = bigger;
        }
    }
    PyObject *source = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "strict");
    free(buf);
    if (!source) die("the task source is not valid UTF-8");
    return source;
}

__attribute__((export_name("wizer.initialize")))
void wizer_initialize(void) {
    scrub_metadata = 1;
    start_interpreter();
    PyObject *guest = PyImport_ImportModule("capsule._guest");
    if (!guest) die("cannot import the capsule SDK");
    sdk_run = PyObject_GetAttrString(guest, "run");
    PyObject *load = PyObject_GetAttrString(guest, "load_user_module");
    if (!sdk_run || !load) die("the capsule SDK lacks run/load_user_module");
    const char *file = getenv("CAPSULE_TASK_FILE");
    PyObject *source = read_stdin();
    PyObject *ok = PyObject_CallFunction(load, "Os", source, file ? file : "task.py");
    if (!ok) die("loading the task module failed");
    if (ok != Py_True) {
        /* The SDK already printed the user's error to stderr. */
        fflush(stderr);
        abort();
    }
    Py_DECREF(ok);
    Py_DECREF(source);
    Py_DECREF(load);
    Py_DECREF(guest);
    scrub_metadata = 0;
}

/* ---- canonical ABI ---------------------------------------------------------------------- */

__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    (void)align; /* malloc's 16-byte alignment covers every canonical-ABI alignment */
    if (new_size == 0) return (void *)align;
    void *p = realloc(old, new_size);
    if (!p) abort();
    return p;
}


static run_return RET;

static abi_string copy_bytes(const char *data, size_t len) {
    abi_string s = {malloc(len ? len : 1), len};
    if (!s.ptr) abort();
    memcpy(s.ptr, data, len);
    return s;
}

static abi_string copy_cstr(const char *text) { return copy_bytes(text, strlen(text)); }

/* Copies a Python str (or "" for anything else) into guest memory owned by the return area. */
static abi_string copy_pystr(PyObject *obj) {
    Py_ssize_t len = 0;
    const char *utf8 = obj && PyUnicode_Check(obj) ? PyUnicode_AsUTF8AndSize(obj, &len) : NULL;
    if (!utf8) {
        PyErr_Clear();
        return copy_cstr("");
    }
    return copy_bytes(utf8, (size_t)len);
}

static void internal_error(const char *message) {
    PyErr_Clear();
    RET.is_err = 1;
    RET.strings[0] = copy_cstr("internal");
    RET.strings[1] = copy_cstr(message);
    RET.strings[2] = copy_cstr("");
}

__attribute__((export_name("run")))
run_return *run(char *name_ptr, size_t name_len, char *args_ptr, size_t args_len) {
    /* wasi-libc cached the preopen table and environ during init; exec time grants differ. */
    __wasilibc_reset_preopens();
    __wasilibc_deinitialize_environ();

    PyObject *name = PyUnicode_DecodeUTF8(name_ptr, (Py_ssize_t)name_len, "strict");
    PyObject *args = PyUnicode_DecodeUTF8(args_ptr, (Py_ssize_t)args_len, "strict");
    free(name_ptr);
    free(args_ptr);
    if (!name || !args) {
        Py_XDECREF(name);
        Py_XDECREF(args);
        internal_error("task name or arguments are not valid UTF-8");
        return &RET;
    }
    /* The SDK returns (ok: bool, payload: str) or (False, (error_type, message, traceback)). */
    PyObject *outcome = PyObject_CallFunctionObjArgs(sdk_run, name, args, NULL);
    Py_DECREF(name);
    Py_DECREF(args);
    if (!outcome || !PyTuple_Check(outcome) || PyTuple_GET_SIZE(outcome) != 2) {
        Py_XDECREF(outcome);
        internal_error("the capsule SDK returned an unexpected value");
        return &RET;
    }
    PyObject *payload = PyTuple_GET_ITEM(outcome, 1);
    if (PyTuple_GET_ITEM(outcome, 0) == Py_True) {
        RET.is_err = 0;
        RET.strings[0] = copy_pystr(payload);
    } else if (PyTuple_Check(payload) && PyTuple_GET_SIZE(payload) == 3) {
        RET.is_err = 1;
        for (int i = 0; i < 3; i++) RET.strings[i] = copy_pystr(PyTuple_GET_ITEM(payload, i));
    } else {
        Py_DECREF(outcome);
        internal_error("the capsule SDK returned a malformed error");
        return &RET;
    }
    Py_DECREF(outcome);
    return &RET;
}

__attribute__((export_name("cabi_post_run")))
void cabi_post_run(run_return *ret) {
    int count = ret->is_err ? 3 : 1;
    for (int i = 0; i < count; i++) {
        free(ret->strings[i].ptr);
        ret->strings[i].ptr = NULL;
    }
}
