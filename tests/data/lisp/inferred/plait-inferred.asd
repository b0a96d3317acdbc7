;;; A package-inferred system: each file is a system of its own, named after its package, and
;;; depends on the systems of the packages its defpackage uses.
(defsystem "plait-inferred" :class :package-inferred-system :depends-on ("plait-inferred/main"))
