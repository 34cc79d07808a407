// A per-batch memo: values of any type, each computed once under a string key and
// returned by reference for the rest of the batch. The type a key was stored with is
// checked on every lookup; asking for a key with another type is a logic error.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeindex>
#include <typeinfo>

namespace fisheval::solvers {

class Memo {
 public:
  // The value under `key`, made by `make()` on first use. Values never move: references
  // stay valid while the memo lives, and `make` may itself use the memo.
  template <class T>
  T& get(const std::string& key, const std::function<T()>& make) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      auto value = std::make_shared<T>(make());
      it = entries_.emplace(key, Entry{std::type_index(typeid(T)), std::move(value)}).first;
    }
    if (it->second.type != std::type_index(typeid(T))) {
      throw std::logic_error("memo key '" + key + "' holds a " + it->second.type.name() + ", asked for a " +
                             typeid(T).name());
    }
    return *static_cast<T*>(it->second.value.get());
  }
  bool contains(const std::string& key) const { return entries_.count(key) > 0; }

 private:
  struct Entry {
    std::type_index type;
    std::shared_ptr<void> value;
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace fisheval::solvers
