#include "fake_origin.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace prefetch::testing {

uint8_t pattern_byte(uint64_t offset) {
  uint64_t x = offset * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<uint8_t>(x);
}

std::vector<uint8_t> pattern_bytes(uint64_t size) {
  std::vector<uint8_t> v(size);
  for (uint64_t i = 0; i < size; ++i) v[i] = pattern_byte(i);
  return v;
}

namespace {

Error transient_error(ErrorKind kind, const char* message) {
  Error e;
  e.kind = kind;
  e.transient = true;
  e.message = message;
  return e;
}

Error error_for_status(int status) {
  Error e;
  e.http_status = status;
  e.message = "HTTP " + std::to_string(status);
  if (status == 404 || status == 410) {
    e.kind = ErrorKind::kNotFound;
  } else if (status == 401 || status == 403 || status == 407) {
    e.kind = ErrorKind::kNotAuthorized;
  } else if (status == 416) {
    e.kind = ErrorKind::kSeek;
  } else if (status == 412) {
    e.kind = ErrorKind::kResourceChanged;
  } else {
    e.kind = ErrorKind::kRead;
    e.transient = status >= 500 || status == 429 || status == 408;
  }
  return e;
}

}  // namespace

// One request's progress. Only the worker changes the progress fields; the
// flags set from other threads (cancel, resume) are read under the mutex.
struct FakeOrigin::State {
  size_t id = 0;
  RangeRequest request;
  Reply reply;
  std::shared_ptr<FetchListener> listener;
  std::shared_ptr<const std::vector<uint8_t>> bytes;  // the resource at start
  std::string validator;
  FakeClock::time_point due{};
  bool sent_told = false;  // on_sent came (Reply::setup)
  bool head_sent = false;
  // The body: bytes[body_begin, body_end) then `extra_bytes` of junk.
  uint64_t body_begin = 0, body_end = 0, body_len = 0;
  uint64_t sent = 0;
  bool cancelled = false;
  bool paused = false;
  uint64_t resume_seq = 0, paused_at_seq = 0;
  bool done = false;
  int status = 0;
};

class FakeOrigin::FakeFetch : public Fetch {
 public:
  FakeFetch(FakeOrigin* origin, size_t id) : origin_(origin), id_(id) {}
  void cancel() override { origin_->cancel(id_); }
  void resume() override { origin_->resume(id_); }

 private:
  FakeOrigin* origin_;  // the Prefetcher keeps the origin alive longer than its fetches
  size_t id_;
};

FakeOrigin::FakeOrigin(std::vector<uint8_t> data, std::string validator)
    : data_(std::make_shared<const std::vector<uint8_t>>(std::move(data))),
      current_(data_),
      validator_(std::move(validator)) {
  worker_ = std::thread([this] { run(); });
}

FakeOrigin::~FakeOrigin() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    for (auto& s : live_) s->cancelled = true;
  }
  work_cv_.notify_all();
  worker_.join();
}

std::shared_ptr<Fetch> FakeOrigin::start(const RangeRequest& request,
                                         std::shared_ptr<FetchListener> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = std::make_shared<State>();
  s->id = records_.size();
  s->request = request;
  s->listener = std::move(listener);
  const unsigned attempt = attempts_[request.begin]++;
  s->reply = script_ ? script_(request, attempt) : Reply{};
  if (busy_limit_ && in_flight_ >= busy_limit_) {
    s->reply.status = 503;
    s->reply.retry_after = busy_retry_after_;
    ++busy_answers_;
  }
  s->bytes = current_;
  s->validator = s->reply.validator ? *s->reply.validator : validator_;
  const FakeClock::time_point now = FakeClock::now();
  // With a set-up to tell, the first step is on_sent; the first-byte wait
  // starts there.
  s->due =
      now + request.delay + (s->reply.setup ? FakeClock::duration(0) : s->reply.first_byte_delay);
  s->cancelled = stop_;

  RequestRecord r;
  r.id = s->id;
  r.begin = request.begin;
  r.end = request.end;
  r.validator = request.validator;
  r.if_none_match = request.if_none_match;
  r.delay = request.delay;
  r.attempt = attempt;
  r.started = now;
  records_.push_back(r);
  live_.push_back(s);
  max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
  work_cv_.notify_all();
  state_cv_.notify_all();
  return std::make_shared<FakeFetch>(this, s->id);
}

void FakeOrigin::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    posted_.push_back(std::move(fn));
  }
  work_cv_.notify_all();
}

void FakeOrigin::set_script(Script script) {
  std::lock_guard<std::mutex> lock(mu_);
  script_ = std::move(script);
}

void FakeOrigin::change_resource(std::vector<uint8_t> data, std::string validator) {
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::make_shared<const std::vector<uint8_t>>(std::move(data));
  validator_ = std::move(validator);
}

void FakeOrigin::set_write_hook(std::function<void(uint64_t begin)> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  write_hook_ = std::move(hook);
}

void FakeOrigin::hold_head(uint64_t begin) {
  std::lock_guard<std::mutex> lock(mu_);
  gates_[begin] = Gate{};
}

void FakeOrigin::hold_body(uint64_t begin, uint64_t after_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  gates_[begin] = Gate{after_bytes};
}

void FakeOrigin::hold_all_heads() {
  std::lock_guard<std::mutex> lock(mu_);
  hold_all_heads_ = true;
}

void FakeOrigin::release(uint64_t begin) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // An explicit gate of {begin, after=max} keeps it exempt from hold_all_heads.
    gates_[begin] = Gate{UINT64_MAX};
  }
  work_cv_.notify_all();
}

void FakeOrigin::release_all() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    gates_.clear();
    hold_all_heads_ = false;
  }
  work_cv_.notify_all();
}

std::vector<RequestRecord> FakeOrigin::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_;
}

size_t FakeOrigin::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_.size();
}

unsigned FakeOrigin::max_in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_in_flight_;
}

void FakeOrigin::set_busy_limit(unsigned limit, std::string retry_after) {
  std::lock_guard<std::mutex> lock(mu_);
  busy_limit_ = limit;
  busy_retry_after_ = std::move(retry_after);
}

void FakeOrigin::set_total_chunk_interval(std::chrono::microseconds interval) {
  std::lock_guard<std::mutex> lock(mu_);
  total_interval_ = interval;
}

unsigned FakeOrigin::busy_answers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_answers_;
}

unsigned FakeOrigin::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

template <typename Pred>
bool FakeOrigin::wait_for(std::chrono::milliseconds timeout, Pred pred) {
  std::unique_lock<std::mutex> lock(mu_);
  return state_cv_.wait_for(lock, timeout, pred);
}

bool FakeOrigin::wait_requests(size_t n, std::chrono::milliseconds timeout) {
  return wait_for(timeout, [&] { return records_.size() >= n; });
}

bool FakeOrigin::wait_held(uint64_t begin, std::chrono::milliseconds timeout) {
  return wait_for(timeout, [&] {
    for (const auto& s : live_) {
      if (s->request.begin == begin && !s->done && held_at_gate(*s)) return true;
    }
    return false;
  });
}

bool FakeOrigin::wait_idle(std::chrono::milliseconds timeout) {
  return wait_for(timeout, [&] { return in_flight_ == 0 && !in_callback_ && posted_.empty(); });
}

bool FakeOrigin::wait_all_done(std::chrono::milliseconds timeout) {
  return wait_for(timeout, [&] {
    if (in_callback_) return false;
    for (const auto& r : records_) {
      if (!r.done) return false;
    }
    return true;
  });
}

void FakeOrigin::cancel(size_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : live_) {
      if (s->id == id && !s->done) {
        s->cancelled = true;
        records_[id].cancel_called = true;
      }
    }
  }
  work_cv_.notify_all();
}

void FakeOrigin::resume(size_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : live_) {
      if (s->id == id) ++s->resume_seq;
    }
  }
  work_cv_.notify_all();
}

bool FakeOrigin::held_at_gate(const State& s) const {
  if (s.reply.setup && !s.sent_told) return false;  // the gates hold heads and bodies, not sends
  auto it = gates_.find(s.request.begin);
  if (it == gates_.end()) return !s.head_sent && hold_all_heads_;
  if (!it->second.after) return !s.head_sent;
  return s.head_sent && s.sent >= *it->second.after && s.sent < s.body_len;
}

bool FakeOrigin::parked(const State& s) const {
  if (s.cancelled) return false;
  if (s.paused && s.resume_seq == s.paused_at_seq) return true;
  return held_at_gate(s);
}

std::shared_ptr<FakeOrigin::State> FakeOrigin::pick(FakeClock::time_point now,
                                                    FakeClock::time_point* next_due) {
  std::shared_ptr<State> best;
  *next_due = FakeClock::time_point::max();
  for (auto& s : live_) {
    if (s->done) continue;
    if (s->cancelled) return s;
    if (parked(*s)) continue;
    // The host's total cap holds back bodies, not heads.
    const FakeClock::time_point due = s->head_sent ? std::max(s->due, total_due_) : s->due;
    if (due > now) {
      *next_due = std::min(*next_due, due);
      continue;
    }
    if (!best || s->due < best->due) best = s;
  }
  return best;
}

void FakeOrigin::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    live_.erase(std::remove_if(live_.begin(), live_.end(), [](const auto& s) { return s->done; }),
                live_.end());
    if (stop_ && live_.empty()) return;
    if (!posted_.empty()) {
      std::function<void()> fn = std::move(posted_.front());
      posted_.pop_front();
      in_callback_ = true;
      lock.unlock();
      fn();
      fn = nullptr;
      lock.lock();
      in_callback_ = false;
      state_cv_.notify_all();
      continue;
    }
    FakeClock::time_point next_due;
    std::shared_ptr<State> s = pick(FakeClock::now(), &next_due);
    if (!s) {
      if (next_due == FakeClock::time_point::max()) {
        work_cv_.wait(lock);
      } else {
        work_cv_.wait_until(lock, next_due);
      }
      continue;
    }
    step(s, lock);
    state_cv_.notify_all();
  }
}

void FakeOrigin::finish(const std::shared_ptr<State>& s, const Error* error,
                        std::unique_lock<std::mutex>& lock) {
  s->done = true;
  --in_flight_;
  RequestRecord& r = records_[s->id];
  r.ended = FakeClock::now();
  r.done = true;
  if (error) r.error = error->kind;
  r.body_bytes = s->sent;
  std::shared_ptr<FetchListener> listener = std::move(s->listener);
  in_callback_ = true;
  lock.unlock();
  listener->on_done(error);
  listener.reset();
  lock.lock();
  in_callback_ = false;
}

void FakeOrigin::step(const std::shared_ptr<State>& s, std::unique_lock<std::mutex>& lock) {
  if (s->cancelled) {
    Error e;
    e.kind = ErrorKind::kCancelled;
    e.message = "cancelled";
    finish(s, &e, lock);
    return;
  }
  const Reply& reply = s->reply;
  const std::vector<uint8_t>& bytes = *s->bytes;
  const uint64_t size = bytes.size();

  if (reply.setup && !s->sent_told) {
    s->sent_told = true;
    s->due = FakeClock::now() + reply.first_byte_delay;
    SentInfo info;
    info.setup = reply.setup;
    in_callback_ = true;
    lock.unlock();
    s->listener->on_sent(info);
    lock.lock();
    in_callback_ = false;
    return;
  }

  if (!s->head_sent) {
    if (reply.connect_error) {
      Error e = transient_error(ErrorKind::kOpenRead, "connection refused");
      finish(s, &e, lock);
      return;
    }
    ResponseHead head;
    head.etag = s->validator;
    head.retry_after = reply.retry_after;
    head.uri = reply.uri;
    if (reply.status >= 400) {
      head.status = reply.status;
      head.content_length = 0;
    } else if (reply.ignore_range) {
      head.status = 200;
      head.content_length = size;
      s->body_begin = 0;
      s->body_end = size;
    } else if (s->request.begin >= size) {
      head.status = 416;
      head.has_range = !reply.unknown_total;
      if (!reply.unknown_total) head.total = size;
      head.content_length = 0;
    } else {
      uint64_t end = std::min(s->request.end.value_or(size), size);
      if (reply.max_bytes) end = std::min(end, s->request.begin + *reply.max_bytes);
      head.status = 206;
      head.has_range = true;
      head.first = s->request.begin;
      head.last = end - 1;
      if (!reply.unknown_total) head.total = size;
      if (reply.content_range) {
        head.first = reply.content_range->first;
        head.last = reply.content_range->second;
      }
      head.content_length = end - s->request.begin;
      s->body_begin = s->request.begin;
      s->body_end = end;
    }
    if (reply.status > 0 && reply.status < 400) head.status = reply.status;
    head.response_headers = reply.headers;
    if (!s->request.if_none_match.empty() && s->request.if_none_match == s->validator &&
        head.status < 300) {
      head.status = 304;  // unchanged: no body
      head.has_range = false;
      head.content_length = 0;
      s->body_end = s->body_begin;
    }
    s->status = head.status;
    s->body_len = s->body_end - s->body_begin + (head.status < 400 ? reply.extra_bytes : 0);
    s->head_sent = true;

    in_callback_ = true;
    lock.unlock();
    const bool go_on = s->listener->on_head(head);
    lock.lock();
    in_callback_ = false;
    if (!go_on) {
      records_[s->id].abandoned = true;
      Error e;
      e.kind = ErrorKind::kCancelled;
      e.message = "abandoned after the head";
      finish(s, &e, lock);
    } else if (head.status >= 400) {
      Error e = error_for_status(head.status);
      finish(s, &e, lock);
    }
    return;
  }

  if (s->sent >= s->body_len) {
    finish(s, nullptr, lock);
    return;
  }
  if (reply.cut_after && s->sent >= *reply.cut_after) {
    Error e = transient_error(ErrorKind::kRead, "connection reset");
    finish(s, &e, lock);
    return;
  }
  uint64_t want = std::min<uint64_t>(reply.chunk, s->body_len - s->sent);
  if (reply.cut_after) want = std::min(want, *reply.cut_after - s->sent);
  auto gate = gates_.find(s->request.begin);
  if (gate != gates_.end() && gate->second.after && *gate->second.after > s->sent) {
    want = std::min(want, *gate->second.after - s->sent);
  }
  const uint64_t seq = s->resume_seq;
  const std::function<void(uint64_t)> hook = write_hook_;

  in_callback_ = true;
  lock.unlock();
  size_t length = want;
  uint8_t* area = s->listener->write_area(&length);
  size_t n = 0;
  if (area && length > 0) {
    if (hook) hook(s->request.begin);
    n = std::min<size_t>(length, want);
    for (size_t k = 0; k < n; ++k) {
      const uint64_t pos = s->body_begin + s->sent + k;
      area[k] = pos < s->body_end ? bytes[pos] : 0xEE;
    }
    s->listener->on_data(n);
  }
  lock.lock();
  in_callback_ = false;
  if (n == 0) {
    s->paused = true;
    s->paused_at_seq = seq;
    return;
  }
  s->paused = false;
  s->sent += n;
  records_[s->id].body_bytes = s->sent;
  s->due = FakeClock::now() + reply.chunk_interval;
  if (total_interval_.count())
    total_due_ = std::max(total_due_, FakeClock::now()) + total_interval_;
}

}  // namespace prefetch::testing
