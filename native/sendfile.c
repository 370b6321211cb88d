// mirra-sendfile.node: sendfile(2) from a blob file to a client's TCP socket,
// so that the bytes of a local blob go from the page cache to the socket
// without passing through JavaScript buffers. Node has no sendfile; copying
// each chunk into a pooled buffer (pread) and out again (write) costs two
// copies per byte that nginx and Go's net/http (Spegel) do not pay
// (bench:serve, 8 streams: 0.85-1.07 of nginx with copies; the README has the
// numbers with sendfile).
//
// One call sends `count` bytes of the file from `offset` and then calls back
// once with (code, bytes sent): 0 is success, a positive code an errno (or
// 65536: the file ended early), a negative one libuv's (the poll failed). The waiting never blocks a thread:
// - the sendfile calls run in Node's thread pool (a page-cache miss reads the
//   disk there, as fs.read would, not on the event loop), a turn until the
//   socket's buffer is full (EAGAIN: the socket is non-blocking) or 1 MiB
//   went (MAX_TURN_BYTES: the pool serves every other request too);
// - then the event loop waits for the socket to be writable (a uv_poll on a
//   dup of its descriptor: libuv allows one watcher per descriptor, and the
//   socket's own handle has the original) and the next sendfile goes to the
//   pool.
// cancel() ends a call at its next step (the client went away): at once when
// it is waiting for the socket, after the current sendfile when one runs.
//
// Built against Node-API only (node-api-headers); the few libuv functions used
// are declared here (libuv's ABI is stable within 1.x, and the one enum value
// needed is checked at load: uv_handle_type_name(8) must be "poll").
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct uv_loop_s uv_loop_t;
typedef struct uv_handle_s uv_handle_t;
typedef struct uv_poll_s uv_poll_t;
typedef struct uv_timer_s uv_timer_t;
typedef void (*uv_poll_cb)(uv_poll_t* handle, int status, int events);
typedef void (*uv_timer_cb)(uv_timer_t* handle);
typedef void (*uv_close_cb)(uv_handle_t* handle);
extern size_t uv_handle_size(int type);
extern const char* uv_handle_type_name(int type);
extern int uv_poll_init(uv_loop_t* loop, uv_poll_t* handle, int fd);
extern int uv_poll_start(uv_poll_t* handle, int events, uv_poll_cb cb);
extern int uv_poll_stop(uv_poll_t* handle);
extern int uv_timer_init(uv_loop_t* loop, uv_timer_t* handle);
extern int uv_timer_start(uv_timer_t* handle, uv_timer_cb cb, uint64_t timeout, uint64_t repeat);
extern int uv_timer_stop(uv_timer_t* handle);
extern void uv_close(uv_handle_t* handle, uv_close_cb cb);
extern void* uv_handle_get_data(const uv_handle_t* handle);
extern void uv_handle_set_data(uv_handle_t* handle, void* data);

#define UV_POLL_HANDLE 8
#define UV_TIMER_HANDLE 13
#define UV_WRITABLE_EVENT 2
/**
 * One turn in the thread pool sends at most this much before giving the pool
 * back: the pool's 4 threads also open files and read manifests for every
 * other request. With 64 MiB turns, 32 streams to a fast peer held the pool
 * for seconds, and that agent answered manifest HEADs after 8-25 s
 * (bench:load-peer); 1 MiB is the copying path's pread size.
 */
#define MAX_TURN_BYTES (1024u * 1024u)
/** The callback's code when the file ended before `count` bytes (not an errno, not a libuv status). */
#define CODE_FILE_ENDED 65536

enum step { STEP_POOL, STEP_POLL, STEP_DONE };

typedef struct {
  napi_env env;
  napi_ref callback;
  napi_async_work work;
  uv_poll_t* poll;
  uv_timer_t* timer; /* the client's idle limit while waiting for the socket */
  uint64_t idle_ms;  /* 0: none */
  int out_fd; /* our dup of the socket's descriptor */
  int in_fd;  /* the file's descriptor (owned by the caller) */
  off_t offset;
  uint64_t left;
  uint64_t sent;
  int err;         /* errno of a failed sendfile or ETIMEDOUT, or a negative libuv status */
  int would_block; /* the last sendfile found the socket's buffer full */
  int ended;       /* the file ended before `count` bytes */
  int cancelled;
  enum step step;
  int refs; /* the JavaScript handle, and the closes of the poll and timer handles */
} job_t;

static void release(job_t* job) {
  if (--job->refs == 0) free(job);
}

static void on_poll_closed(uv_handle_t* handle) {
  job_t* job = uv_handle_get_data(handle);
  close(job->out_fd);
  free(handle);
  release(job);
}

static void on_timer_closed(uv_handle_t* handle) {
  job_t* job = uv_handle_get_data(handle);
  free(handle);
  release(job);
}

static void run_turn(napi_env env, void* data) {
  (void)env;
  job_t* job = data;
  uint64_t turn = 0;
  job->would_block = 0;
  if (job->err != 0) return; /* ended while waiting (timeout, poll error): only the completion is left */
  while (job->left > 0 && !__atomic_load_n(&job->cancelled, __ATOMIC_RELAXED) && turn < MAX_TURN_BYTES) {
    uint64_t room = MAX_TURN_BYTES - turn;
    size_t want = (size_t)(job->left < room ? job->left : room);
    ssize_t n = sendfile(job->out_fd, job->in_fd, &job->offset, want);
    if (n > 0) {
      job->left -= (uint64_t)n;
      job->sent += (uint64_t)n;
      turn += (uint64_t)n;
    } else if (n == 0) {
      job->ended = 1;
      return;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      job->would_block = 1;
      return;
    } else {
      job->err = errno;
      return;
    }
  }
}

static void turn_done(napi_env env, napi_status status, void* data);

static void queue_turn(job_t* job) {
  napi_value name;
  job->step = STEP_POOL;
  napi_create_string_utf8(job->env, "mirra.sendfile", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(job->env, NULL, name, run_turn, turn_done, job, &job->work) != napi_ok ||
      napi_queue_async_work(job->env, job->work) != napi_ok) {
    // Not expected; end the call rather than leave it hanging.
    job->err = ENOMEM;
    turn_done(job->env, napi_ok, job);
  }
}

static void finish(job_t* job) {
  napi_env env = job->env;
  napi_handle_scope scope;
  napi_value callback, global, argv[2];
  int code = job->err != 0 ? job->err : job->cancelled ? ECANCELED : job->ended ? CODE_FILE_ENDED : 0;
  job->step = STEP_DONE;
  uv_close((uv_handle_t*)job->poll, on_poll_closed);
  uv_close((uv_handle_t*)job->timer, on_timer_closed);
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, job->callback, &callback);
  napi_get_global(env, &global);
  // errno as is; CODE_FILE_ENDED: the file ended early (sendfile returned 0); a libuv status is negative.
  napi_create_int32(env, code, &argv[0]);
  napi_create_double(env, (double)job->sent, &argv[1]);
  napi_delete_reference(env, job->callback);
  job->callback = NULL;
  // An exception thrown by the callback is Node's to report (uncaught), as for any callback.
  napi_call_function(env, global, callback, 2, argv, NULL);
  napi_close_handle_scope(env, scope);
}

/**
 * From a libuv callback: the next step goes through the pool even when it
 * only ends the call, so that the JavaScript callback always comes from an
 * async work's completion (Node runs the microtasks after it).
 */
static void queue_from_libuv(job_t* job) {
  napi_handle_scope scope;
  // Not a Node-API callback: the async work's name needs a handle scope of its own.
  napi_open_handle_scope(job->env, &scope);
  queue_turn(job);
  napi_close_handle_scope(job->env, scope);
}

static void on_writable(uv_poll_t* handle, int status, int events) {
  (void)events;
  job_t* job = uv_handle_get_data((uv_handle_t*)handle);
  uv_poll_stop(handle);
  uv_timer_stop(job->timer);
  if (status < 0) job->err = status;
  queue_from_libuv(job);
}

/** Nothing could be written for idle_ms: the client stopped reading. */
static void on_idle(uv_timer_t* handle) {
  job_t* job = uv_handle_get_data((uv_handle_t*)handle);
  uv_poll_stop(job->poll);
  job->err = ETIMEDOUT;
  queue_from_libuv(job);
}

static void turn_done(napi_env env, napi_status status, void* data) {
  (void)status;
  job_t* job = data;
  if (job->work != NULL) napi_delete_async_work(env, job->work);
  job->work = NULL;
  if (job->err != 0 || job->cancelled || job->ended || job->left == 0) return finish(job);
  if (!job->would_block) return queue_turn(job);
  int rc = uv_poll_start(job->poll, UV_WRITABLE_EVENT, on_writable);
  if (rc == 0 && job->idle_ms > 0) rc = uv_timer_start(job->timer, on_idle, job->idle_ms, 0);
  if (rc != 0) {
    uv_poll_stop(job->poll);
    job->err = rc;
    return finish(job);
  }
  job->step = STEP_POLL;
}

static void handle_finalized(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  release(data);
}

static napi_value throw_error(napi_env env, const char* message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/** The arguments of send(), checked. */
typedef struct {
  int32_t socket_fd, file_fd;
  double offset, count, idle_ms;
} send_args_t;

static const char* read_args(napi_env env, napi_value* argv, send_args_t* a) {
  napi_valuetype type;
  if (napi_get_value_int32(env, argv[0], &a->socket_fd) != napi_ok || a->socket_fd < 0) return "send: socketFd must be a descriptor";
  if (napi_get_value_int32(env, argv[1], &a->file_fd) != napi_ok || a->file_fd < 0) return "send: fileFd must be a descriptor";
  if (napi_get_value_double(env, argv[2], &a->offset) != napi_ok || !(a->offset >= 0 && a->offset <= 9007199254740991.0)) return "send: offset must be a byte offset";
  if (napi_get_value_double(env, argv[3], &a->count) != napi_ok || !(a->count >= 1 && a->count <= 9007199254740991.0)) return "send: count must be a positive byte count";
  if (napi_get_value_double(env, argv[4], &a->idle_ms) != napi_ok || !(a->idle_ms >= 0 && a->idle_ms <= 4294967295.0)) return "send: idleMs must be milliseconds (0: none)";
  if (napi_typeof(env, argv[5], &type) != napi_ok || type != napi_function) return "send: callback must be a function";
  return NULL;
}

/** A job with its two handles set up, or NULL (nothing left open). */
static job_t* new_job(napi_env env, const send_args_t* a) {
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, (struct uv_loop_s**)&loop) != napi_ok) return NULL;
  job_t* job = calloc(1, sizeof *job);
  uv_poll_t* poll = calloc(1, uv_handle_size(UV_POLL_HANDLE));
  uv_timer_t* timer = calloc(1, uv_handle_size(UV_TIMER_HANDLE));
  int out_fd = job == NULL || poll == NULL || timer == NULL ? -1 : dup(a->socket_fd);
  if (out_fd < 0 || uv_poll_init(loop, poll, out_fd) != 0) {
    if (out_fd >= 0) close(out_fd);
    free(job);
    free(poll);
    free(timer);
    return NULL;
  }
  uv_timer_init(loop, timer);
  job->env = env;
  job->poll = poll;
  job->timer = timer;
  job->out_fd = out_fd;
  job->in_fd = a->file_fd;
  job->offset = (off_t)a->offset;
  job->left = (uint64_t)a->count;
  job->idle_ms = (uint64_t)a->idle_ms;
  job->refs = 3;
  uv_handle_set_data((uv_handle_t*)poll, job);
  uv_handle_set_data((uv_handle_t*)timer, job);
  return job;
}

/** send(socketFd, fileFd, offset, count, idleMs, callback) -> a handle for cancel(). */
static napi_value send_file(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  send_args_t args;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) return throw_error(env, "send: want (socketFd, fileFd, offset, count, idleMs, callback)");
  const char* wrong = read_args(env, argv, &args);
  if (wrong != NULL) return throw_error(env, wrong);
  job_t* job = new_job(env, &args);
  if (job == NULL) return throw_error(env, "send: the socket cannot be duplicated or polled");
  napi_value handle;
  if (napi_create_reference(env, argv[5], 1, &job->callback) != napi_ok || napi_create_external(env, job, handle_finalized, NULL, &handle) != napi_ok) {
    // Nobody could cancel it: the handles' closes give the job back.
    job->refs = 2;
    if (job->callback != NULL) napi_delete_reference(env, job->callback);
    uv_close((uv_handle_t*)job->poll, on_poll_closed);
    uv_close((uv_handle_t*)job->timer, on_timer_closed);
    return throw_error(env, "send: could not make a handle");
  }
  queue_turn(job);
  return handle;
}

/** cancel(handle): the call ends with ECANCELED at its next step (its callback still comes, once). */
static napi_value cancel_send(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    return throw_error(env, "cancel: want a handle from send()");
  }
  job_t* job = data;
  if (job->step == STEP_DONE || job->cancelled) return NULL;
  __atomic_store_n(&job->cancelled, 1, __ATOMIC_RELAXED);
  if (job->step == STEP_POLL) {
    uv_poll_stop(job->poll);
    uv_timer_stop(job->timer);
    finish(job);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  const char* poll_name = uv_handle_type_name(UV_POLL_HANDLE);
  const char* timer_name = uv_handle_type_name(UV_TIMER_HANDLE);
  if (poll_name == NULL || strcmp(poll_name, "poll") != 0 || timer_name == NULL || strcmp(timer_name, "timer") != 0) {
    napi_throw_error(env, NULL, "mirra-sendfile: this Node's libuv does not number its handle types as libuv 1.x does");
    return NULL;
  }
  napi_value fn;
  napi_create_function(env, "send", NAPI_AUTO_LENGTH, send_file, NULL, &fn);
  napi_set_named_property(env, exports, "send", fn);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, cancel_send, NULL, &fn);
  napi_set_named_property(env, exports, "cancel", fn);
  return exports;
}
