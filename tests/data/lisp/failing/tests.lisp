(defpackage :plait-failing (:use :cl :fiveam))
(in-package :plait-failing)

(def-suite :plait-failing)
(in-suite :plait-failing)

(test arithmetic
  (is (= 4 (+ 2 2)))
  (is (= 5 (+ 2 2))))
