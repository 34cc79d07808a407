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
std::unique_ptr<UpdateMethod> make_kfac(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_kfac_exact(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_ekfac(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_iekfac(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_kfe(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_shampoo(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_fim_shampoo(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_fishy(const MethodOptions&);
std::unique_ptr<UpdateMethod> make_fishy_classifier(const MethodOptions&);

}  // namespace fisheval::solvers
