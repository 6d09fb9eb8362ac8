/*
 * async.i — the async C API (wr_async_*) for walrouter.aio, included at the
 * end of walrouter.i (whose typemaps for sql, params and wr_result **out it
 * uses).
 *
 * The event loop is Python's: these calls never block and keep the GIL
 * (each is a few libpq reads or writes on a non-blocking socket, plus the
 * engine's short critical section). One Python call per wakeup:
 * wr_py_async_step advances the operation with what became ready and says
 * what to wait for next, so the loop registers the fd with
 * add_reader/add_writer and a timer with call_at.
 *
 * Times cross as float seconds on CLOCK_MONOTONIC, the clock of
 * time.monotonic() and of asyncio's loop.time().
 */

%typemap(in, numinputs=0) wr_async **out (wr_async *tmp = NULL) { $1 = &tmp; }
%typemap(argout) wr_async **out {
  $result = SWIG_Python_AppendOutput($result, SWIG_NewPointerObj(tmp$argnum, $descriptor(wr_async *), 0));
}

%inline %{
/* `status, op = wr_py_async_start(session, kind, sql, params, flags)`:
 * kind is one of WR_PY_ASYNC_*; sql is unused ("") for begin, commit and
 * rollback. op is None when status is not 0 (the session's error says
 * why). Nothing is sent yet: the first wr_py_async_step(op, 0) does. */
wr_status wr_py_async_start(wr_session *s, int kind, const char *sql, int nparams, const char *const *params,
                            unsigned flags, wr_async **out) {
  return wr_async_start(s, (wr_async_kind)kind, sql, nparams, params, flags, out);
}

/* Advances op with revents (WR_PY_WAIT_READ/WRITE, or 0 on a timer) and
 * returns None once it is done, else (fd, events, wake): wait until fd
 * (-1: none) has one of events, or until wake (seconds, CLOCK_MONOTONIC). */
PyObject *wr_py_async_step(wr_async *a, int revents) {
  int fd, events;
  uint64_t wake_us;
  if (!wr_async_advance(a, revents)) Py_RETURN_NONE;
  wr_async_poll(a, &fd, &events, &wake_us);
  return Py_BuildValue("(iid)", fd, events, (double)wake_us / 1e6);
}

/* Asks op to stop (a cancel request for a running statement); keep
 * stepping it until it is done. */
void wr_py_async_cancel(wr_async *a) { wr_async_cancel(a); }

/* `status, result = wr_py_async_finish(op)` once op is done: its outcome
 * (the details are on the session), and op is freed. */
wr_status wr_py_async_finish(wr_async *a, wr_result **out) {
  wr_status st = wr_async_result(a, out);
  wr_async_free(a);
  return st;
}

/* Frees op; one still running is abandoned (its connection closed, a write
 * then counts as an unknown outcome). */
void wr_py_async_abandon(wr_async *a) { wr_async_free(a); }
%}

%constant int WR_PY_ASYNC_QUERY = WR_ASYNC_QUERY;
%constant int WR_PY_ASYNC_EXEC = WR_ASYNC_EXEC;
%constant int WR_PY_ASYNC_BEGIN = WR_ASYNC_BEGIN;
%constant int WR_PY_ASYNC_COMMIT = WR_ASYNC_COMMIT;
%constant int WR_PY_ASYNC_ROLLBACK = WR_ASYNC_ROLLBACK;
%constant int WR_PY_WAIT_READ = WR_WAIT_READ;
%constant int WR_PY_WAIT_WRITE = WR_WAIT_WRITE;
