// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A 6-decimal test stablecoin for local chains (`learnstream settlement deploy`).
/// @notice Anyone may mint: it has no value and exists so that the escrow's ERC-20 path runs
/// locally exactly as with a real stablecoin. Never deploy it to a public network.
contract TestStablecoin is ERC20 {
    constructor() ERC20("learnstream test USD", "tUSD") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
