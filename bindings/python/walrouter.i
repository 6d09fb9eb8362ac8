/*
 * walrouter.i — SWIG 4 interface for the private extension walrouter._core.
 *
 * Thin on purpose: the C API as it is, plus the conversions Python needs
 * (out-parameters, a parameter array from a tuple, a result or a node status
 * as Python objects). No routing logic and no ownership: every pointer comes
 * back unowned and the public classes in python/walrouter/ free it once.
 *
 * The GIL is released around every call that may do I/O (connect, probe,
 * round trip, close) and kept for the cheap accessors: the module is built
 * with threads on, `%nothread` is the default, and `%thread` names the
 * calls that wait on the network.
 *
 * Signals (Ctrl-C): a session gets an interrupt function (wr_py_interrupt)
 * that the core polls while a call waits. On the main thread it takes the
 * GIL and runs Python's signal handlers (PyErr_CheckSignals); when one
 * raises (KeyboardInterrupt), the core cancels the statement on the server
 * and the call returns WR_ERR_INTERRUPTED with the exception still pending,
 * which the wrapper then raises instead of returning (see WR_IO_CALL).
 *
 * Text crosses into C NUL-terminated, so a str argument (SQL, DSN, token,
 * option) holding a NUL character is refused (ValueError) rather than cut
 * short: "... WHERE id = 1\0 AND false" must not run as its prefix.
 */
%module(package="walrouter", threads="1") core

%{
#include <string.h>
#include "walrouter.h"

/* threading.main_thread().ident, set by the package (wr_py_set_main_thread):
 * the only thread that runs Python's signal handlers. */
static unsigned long wr_py_main_thread;

/* A session's interrupt function: on the main thread, runs the pending
 * signal handlers; nonzero when one raised (the exception stays set, for the
 * wrapper to raise once the call returns). Elsewhere it never takes the GIL
 * and never stops a call. */
static int wr_py_interrupt(void *arg) {
  PyGILState_STATE g;
  int stop;
  (void)arg;
  if (PyThread_get_thread_ident() != wr_py_main_thread) return 0;
  g = PyGILState_Ensure();
  stop = PyErr_Occurred() != NULL || PyErr_CheckSignals() < 0;
  PyGILState_Release(g);
  return stop;
}
%}

%include <stdint.i>

%nothread;
%thread wr_cluster_open;
%thread wr_cluster_close;
%thread wr_cluster_refresh;
%thread wr_session_free;
%thread wr_session_resume;
%thread wr_session_require;
%thread wr_query;
%thread wr_exec;
%thread wr_begin;
%thread wr_commit;
%thread wr_rollback;
%thread wr_cluster_start_refresher;
%thread wr_cluster_stop_refresher;
%thread wr_stream_open;
%thread wr_stream_next;
%thread wr_stream_close;

/* The calls during which the interrupt function may run Python code: a
 * signal handler's exception is raised instead of the return value (a
 * result or stream already made is freed: see the freearg typemaps). */
%define WR_IO_CALL(name)
%exception name {
  $action
  if (PyErr_Occurred()) SWIG_fail;
}
%enddef
WR_IO_CALL(wr_query)
WR_IO_CALL(wr_exec)
WR_IO_CALL(wr_begin)
WR_IO_CALL(wr_commit)
WR_IO_CALL(wr_rollback)
WR_IO_CALL(wr_session_free)
WR_IO_CALL(wr_stream_open)
WR_IO_CALL(wr_stream_next)
WR_IO_CALL(wr_stream_close)

/* Text arguments: str only, as UTF-8 (cached in the str object, which the
 * call's argument tuple keeps alive while the GIL is released), and no NUL
 * character. */
%typemap(in) const char *sql, const char *dsn, const char *token, const char *key, const char *value {
  Py_ssize_t len;
  if (!PyUnicode_Check($input)) {
    PyErr_Format(PyExc_TypeError, "$1_name: expected str, got %.80s", Py_TYPE($input)->tp_name);
    SWIG_fail;
  }
  $1 = ($1_ltype)PyUnicode_AsUTF8AndSize($input, &len);
  if (!$1) SWIG_fail;
  if ((Py_ssize_t)strlen($1) != len) {
    PyErr_SetString(PyExc_ValueError, "$1_name contains a NUL character");
    SWIG_fail;
  }
}
%typemap(freearg) const char *sql, const char *dsn, const char *token, const char *key, const char *value "";

/* Out-parameters: `status, handle = wr_cluster_open(dsn, opt)`. */
%typemap(in, numinputs=0) wr_cluster **out (wr_cluster *tmp = NULL) { $1 = &tmp; }
%typemap(argout) wr_cluster **out {
  $result = SWIG_Python_AppendOutput($result, SWIG_NewPointerObj(tmp$argnum, $descriptor(wr_cluster *), 0));
}
%typemap(in, numinputs=0) wr_result **out (wr_result *tmp = NULL) { $1 = &tmp; }
%typemap(argout) wr_result **out {
  $result = SWIG_Python_AppendOutput($result, SWIG_NewPointerObj(tmp$argnum, $descriptor(wr_result *), 0));
  tmp$argnum = NULL; /* Python's now */
}
%typemap(freearg) wr_result **out { wr_result_free(tmp$argnum); } /* not handed over: raised */
%typemap(in, numinputs=0) wr_stream **out (wr_stream *tmp = NULL) { $1 = &tmp; }
%typemap(argout) wr_stream **out {
  $result = SWIG_Python_AppendOutput($result, SWIG_NewPointerObj(tmp$argnum, $descriptor(wr_stream *), 0));
  tmp$argnum = NULL;
}
%typemap(freearg) wr_stream **out {
  if (tmp$argnum) { /* opened, then a signal handler raised: close it, keeping the exception */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    Py_BEGIN_ALLOW_THREADS
    wr_stream_close(tmp$argnum);
    Py_END_ALLOW_THREADS
    PyErr_Restore(et, ev, tb);
  }
}

/* wr_options_set's error buffer: `status, message = wr_options_set(o, k, v)`. */
%typemap(in, numinputs=0) (char *errbuf, size_t errlen) (char buf[256]) {
  buf[0] = '\0';
  $1 = buf;
  $2 = sizeof buf;
}
%typemap(argout) (char *errbuf, size_t errlen) {
  $result = SWIG_Python_AppendOutput($result, PyUnicode_DecodeUTF8($1, (Py_ssize_t)strlen($1), "replace"));
}

/* $1..$n text parameters from a sequence of str or None (SQL NULL). The
 * sequence is copied into a tuple that is held until the call returns, so
 * the UTF-8 buffers stay valid while the GIL is released. */
%typemap(in) (int nparams, const char *const *params) (PyObject *seq = NULL) {
  Py_ssize_t n, i;
  const char **v;
  seq = PySequence_Tuple($input);
  if (!seq) SWIG_fail;
  n = PyTuple_GET_SIZE(seq);
  if (n > 65535) {
    PyErr_SetString(PyExc_ValueError, "more than 65535 parameters");
    SWIG_fail;
  }
  $1 = (int)n;
  if (n > 0) {
    v = (const char **)PyMem_Malloc((size_t)n * sizeof *v);
    if (!v) { PyErr_NoMemory(); SWIG_fail; }
    $2 = ($2_ltype)v;
    for (i = 0; i < n; i++) {
      PyObject *item = PyTuple_GET_ITEM(seq, i);
      Py_ssize_t len;
      if (item == Py_None) { v[i] = NULL; continue; }
      if (!PyUnicode_Check(item)) {
        PyErr_Format(PyExc_TypeError, "parameter $%zd: expected str or None, got %.80s", i + 1,
                     Py_TYPE(item)->tp_name);
        SWIG_fail;
      }
      v[i] = PyUnicode_AsUTF8AndSize(item, &len);
      if (!v[i]) SWIG_fail;
      if ((Py_ssize_t)strlen(v[i]) != len) {
        PyErr_Format(PyExc_ValueError, "parameter $%zd contains a NUL character", i + 1);
        SWIG_fail;
      }
    }
  }
}
%typemap(freearg) (int nparams, const char *const *params) {
  PyMem_Free((void *)$2);
  Py_XDECREF(seq$argnum);
}

/* Options live in a plain calloc'ed block owned by the caller ({0} means
 * defaults); the struct's fields are not wrapped. */
%ignore wr_options;
%ignore wr_node_status;
%ignore wr_cluster_node_status; /* see wr_py_node_status */
/* Text the caller frees, and events: see the wr_py_ helpers below. Python
 * handlers are never called from C (the refresher's thread has no GIL):
 * the package polls the event queue instead. */
%ignore wr_cluster_status_json;
%ignore wr_cluster_metrics_text;
%ignore wr_free;
%ignore wr_event;
%ignore wr_event_fn;
%ignore wr_cluster_set_event_handler;
%ignore wr_cluster_poll_events;
%warnfilter(SWIGWARN_PARSE_KEYWORD) wr_event::from; /* ignored anyway */
/* The interrupt function is the package's own (wr_py_set_interrupt). */
%ignore wr_session_set_interrupt;
%ignore wr_interrupt_fn;
/* The async API is for C event loops; Python's sync calls release the GIL. */
%rename("$ignore", regextarget=1, fullname=1) "^wr_async_";
%ignore wr_async;
%ignore wr_async_kind;
%ignore WR_ASYNC_QUERY;
%ignore WR_ASYNC_EXEC;
%ignore WR_ASYNC_BEGIN;
%ignore WR_ASYNC_COMMIT;
%ignore WR_ASYNC_ROLLBACK;
%ignore WR_WAIT_READ;
%ignore WR_WAIT_WRITE;

/* The decision core's pure functions are for drivers written in C; Python
 * needs only its enums and names. */
%rename("$ignore", regextarget=1, fullname=1) "^wr_(lsn|timeline|decide|token|engine|op|sess|probe|config|pos|node_id)_";
%ignore wr_node_id;
%ignore wr_timeline;
%ignore wr_node_view;
%ignore wr_policy;
%ignore wr_choice;
%ignore wr_engine;
%ignore wr_node_track;
%ignore wr_sample;
%ignore wr_config;
%ignore wr_probe;
%ignore wr_sess;
%ignore wr_op;
%ignore wr_step;
%ignore wr_io;

%include "walrouter_engine.h"
%include "walrouter.h"

%inline %{
/* The main thread's ident (threading.main_thread().ident); the package sets
 * it at import and again in a child after fork(). */
void wr_py_set_main_thread(unsigned long ident) { wr_py_main_thread = ident; }

/* Installs the package's interrupt function on a new session. */
void wr_py_set_interrupt(wr_session *s) { wr_session_set_interrupt(s, wr_py_interrupt, NULL); }

wr_options *wr_py_options_new(void) { return (wr_options *)calloc(1, sizeof(wr_options)); }
void wr_py_options_free(wr_options *o) { free(o); }

/* A result as Python objects:
 * (columns, type oids, rows as tuples of str/None, node, reason, affected,
 *  command tag, lsn). Text is decoded as UTF-8 (client_encoding UTF8). */
PyObject *wr_py_result(const wr_result *r) {
  int nrows = wr_result_nrows(r), ncols = wr_result_ncols(r), i, j;
  PyObject *names = PyTuple_New(ncols), *types = PyTuple_New(ncols), *rows = PyList_New(nrows);
  if (!names || !types || !rows) goto fail;
  for (j = 0; j < ncols; j++) {
    PyObject *name = PyUnicode_FromString(wr_result_colname(r, j));
    if (!name) goto fail;
    PyTuple_SET_ITEM(names, j, name);
    PyTuple_SET_ITEM(types, j, PyLong_FromUnsignedLong(wr_result_coltype(r, j)));
  }
  for (i = 0; i < nrows; i++) {
    PyObject *row = PyTuple_New(ncols);
    if (!row) goto fail;
    PyList_SET_ITEM(rows, i, row);
    for (j = 0; j < ncols; j++) {
      PyObject *v;
      if (wr_result_isnull(r, i, j)) {
        Py_INCREF(Py_None);
        v = Py_None;
      } else {
        v = PyUnicode_DecodeUTF8(wr_result_value(r, i, j), wr_result_length(r, i, j), "strict");
        if (!v) goto fail;
      }
      PyTuple_SET_ITEM(row, j, v);
    }
  }
  return Py_BuildValue("(NNNiiLsK)", names, types, rows, wr_result_node(r), (int)wr_result_reason(r),
                       (long long)wr_result_affected(r), wr_result_command(r),
                       (unsigned long long)wr_result_lsn(r));
fail:
  Py_XDECREF(names);
  Py_XDECREF(types);
  Py_XDECREF(rows);
  return NULL;
}

/* Node i's status as a dict (refreshing first when due: the GIL is
 * released meanwhile), or None when i is out of range. */
PyObject *wr_py_node_status(wr_cluster *c, size_t i) {
  wr_node_status st;
  wr_status rc;
  PyObject *served, *n, *last_error;
  int k;
  Py_BEGIN_ALLOW_THREADS
  rc = wr_cluster_node_status(c, i, &st);
  Py_END_ALLOW_THREADS
  if (rc != WR_OK) Py_RETURN_NONE;
  served = PyDict_New();
  if (!served) return NULL;
  for (k = 0; k < WR_REASON_COUNT; k++) {
    if (!st.served[k]) continue;
    n = PyLong_FromUnsignedLongLong(st.served[k]);
    if (!n || PyDict_SetItemString(served, wr_reason_name((wr_reason)k), n) < 0) {
      Py_XDECREF(n);
      Py_DECREF(served);
      return NULL;
    }
    Py_DECREF(n);
  }
  last_error = PyUnicode_DecodeUTF8(st.last_error, (Py_ssize_t)strlen(st.last_error), "replace");
  if (!last_error) {
    Py_DECREF(served);
    return NULL;
  }
  return Py_BuildValue("{s:s,s:i,s:i,s:s,s:L,s:d,s:K,s:d,s:L,s:i,s:i,s:N,s:N,s:K,s:k,s:i,s:d}",
                       "host", st.host, "port", st.port, "role", (int)st.role,
                       "state", wr_node_state_name(st.state), "lag_bytes", (long long)st.lag_bytes,
                       "lag_seconds", st.lag_seconds, "replay_lsn", (unsigned long long)st.replay_lsn,
                       "replay_rate", st.replay_rate, "last_check_unix_ms", (long long)st.last_check_unix_ms,
                       "conns_in_use", st.conns_in_use, "conns_idle", st.conns_idle,
                       "last_error", last_error, "served", served, "errors", (unsigned long long)st.errors,
                       "timeline", (unsigned long)st.timeline, "fenced", st.fenced, "rtt_ms", st.rtt_ms);
}

/* wr_cluster_status_json (which="json") or wr_cluster_metrics_text, as a
 * str; the C text is freed here. The GIL is released: it may refresh. */
PyObject *wr_py_render(wr_cluster *c, const char *which) {
  char *text;
  PyObject *s;
  int json = strcmp(which, "json") == 0;
  Py_BEGIN_ALLOW_THREADS
  text = json ? wr_cluster_status_json(c) : wr_cluster_metrics_text(c);
  Py_END_ALLOW_THREADS
  if (!text) return PyErr_NoMemory();
  s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
  wr_free(text);
  return s;
}

/* The pending node state changes, oldest first, removed from the queue:
 * a list of (node index, from state name, to state name, unix ms). */
PyObject *wr_py_poll_events(wr_cluster *c) {
  wr_event ev[64];
  size_t n = wr_cluster_poll_events(c, ev, 64), k;
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (!list) return NULL;
  for (k = 0; k < n; k++) {
    PyObject *t = Py_BuildValue("(issL)", ev[k].node, wr_node_state_name(ev[k].from),
                                wr_node_state_name(ev[k].to), (long long)ev[k].at_unix_ms);
    if (!t) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)k, t);
  }
  return list;
}
%}

/* The async API for walrouter.aio. */
%include "async.i"
