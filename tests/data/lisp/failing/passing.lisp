(defpackage :plait-passing (:use :cl :fiveam))
(in-package :plait-passing)

(def-suite :plait-passing)
(in-suite :plait-passing)

(test passing-arithmetic
  (is (= 4 (+ 2 2))))
