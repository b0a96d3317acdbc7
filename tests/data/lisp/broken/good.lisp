(defpackage :plait-broken (:use :cl))
(in-package :plait-broken)

(defun good () t)
