from plait import CompileOp, SourceFile


class Broken(SourceFile):
    type = "txt"

    def command(self, op, inputs):
        return ["cat", inputs[5]]  # <- error


defsystem("s", components=[Broken("a")])
