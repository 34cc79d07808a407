// Factories of the method families, one file each under solvers/methods/; the
// registry (solvers/registry.cpp) lists them by name.
#pragma once
#include <memory>

#include "solvers/update_method.h"

namespace fisheval::solvers {

std::unique_ptr<UpdateMethod> make_sgd(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_ef(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_ief(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_ief_param(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_sf(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_ng_cg(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_ng_dense(const MethodOptions&);

}  // namespace fisheval::solvers
