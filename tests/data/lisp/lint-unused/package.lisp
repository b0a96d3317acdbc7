(defpackage :lint-unused (:use :cl))
