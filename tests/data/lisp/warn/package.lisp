(defpackage :plait-warn (:use :cl))
