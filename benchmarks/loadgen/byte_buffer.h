#pragma once
// A growable FIFO of bytes: append at the back, consume from the front.
//
// Owned by one Client, used on its worker thread only. Unlike std::string it
// can hand out uninitialised space to read() or memcpy() into, and consuming
// from the front is O(1) (the bytes are moved down only when space runs out).

#include <cstddef>
#include <cstring>
#include <memory>

namespace gannet::loadgen {

class ByteBuffer {
 public:
  const char* data() const { return buf_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  size_t capacity() const { return cap_; }

  // Returns space for `n` more bytes at the back; commit() what was written.
  char* reserve(size_t n) {
    if (cap_ - end_ < n) makeRoom(n);
    return buf_.get() + end_;
  }
  void commit(size_t n) { end_ += n; }

  void append(const void* p, size_t n) {
    std::memcpy(reserve(n), p, n);
    end_ += n;
  }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  void clear() { begin_ = end_ = 0; }

  // Frees the memory of an empty buffer (idle connections hold none).
  void shrinkIfEmpty() {
    if (empty() && cap_ != 0) {
      buf_.reset();
      cap_ = 0;
    }
  }

 private:
  void makeRoom(size_t n) {
    size_t used = size();
    if (begin_ != 0 && cap_ - used >= n && used <= cap_ / 2) {
      // Moving the live bytes down is enough, and cheap since they are few.
      std::memmove(buf_.get(), buf_.get() + begin_, used);
    } else {
      size_t cap = cap_ == 0 ? 256 : cap_;
      while (cap - used < n) cap *= 2;
      std::unique_ptr<char[]> grown(new char[cap]);
      if (used != 0) std::memcpy(grown.get(), buf_.get() + begin_, used);
      buf_ = std::move(grown);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = used;
  }

  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace gannet::loadgen
