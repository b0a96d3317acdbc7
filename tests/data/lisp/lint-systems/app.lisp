(defpackage :lint-app (:use :cl))
(in-package :lint-app)

(defun main () (lint-tool:tool 21))
