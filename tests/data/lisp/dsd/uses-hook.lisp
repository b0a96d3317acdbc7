(defpackage :plait-dsd (:use :cl) (:export #:compiled-inside-hook-p))
(in-package :plait-dsd)

;; Read while compiling: true only if ASDF's :around-compile hook wrapped the compile.
(defun compiled-inside-hook-p () #.plait-dsd-helper:*inside-hook*)
