(in-package :lint-macro)

(defmacro defconstant-once (name value)
  `(defparameter ,name ,value))
