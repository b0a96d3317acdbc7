(in-package :plait-warn)

(defun defined-later () :later)
(defun uses-it-too () (never-defined))
