/* lambda: decl part (under construction) */
