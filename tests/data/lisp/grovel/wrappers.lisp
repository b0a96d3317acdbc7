(in-package :plait-grovel)

(defwrapper* ("plait_twice" twice) :int ((x :int))
  "return 2 * x;")
