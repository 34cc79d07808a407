// The registry's lines: one per method, naming the function in the method's file (under
// solvers/methods/) that returns its MethodEntry — data and factory. The order is the order
// of `fisheval methods` and of the demo's methods, and breaks ties among the natural-gradient
// references tried for γ/γ_ng (base/method_info.h). Included by solvers/registry.cpp with
// FISHEVAL_METHOD defined.
FISHEVAL_METHOD(sgd_entry)
FISHEVAL_METHOD(ef_entry)
FISHEVAL_METHOD(ief_entry)
FISHEVAL_METHOD(ief_param_entry)
FISHEVAL_METHOD(sf_entry)
FISHEVAL_METHOD(ng_cg_entry)
FISHEVAL_METHOD(ng_dense_entry)
FISHEVAL_METHOD(kfac_entry)
FISHEVAL_METHOD(kfac_exact_entry)
FISHEVAL_METHOD(ekfac_entry)
FISHEVAL_METHOD(iekfac_entry)
FISHEVAL_METHOD(kfe_entry)
FISHEVAL_METHOD(shampoo_entry)
FISHEVAL_METHOD(fim_shampoo_entry)
FISHEVAL_METHOD(fishy_entry)
FISHEVAL_METHOD(fishy_classifier_entry)
